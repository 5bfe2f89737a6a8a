"""Benchmark: one GRPO optimizer step of the learner on one batch, our learner's settings against TRL's, one run.

    python -m bench.learner [--model small|anchor|qwen-vocab] [--rows 32] [--micro 8] [--chunk 2048] [--steps 2]
                            [--sides full,chunked,packed,packed-bf16,packed-compiled,trl,trl-bf16]
    (TRL: pip install -e ".[bench]")

The batch: `--rows` completions of unequal lengths (prompts of 64 tokens, completions drawn from 32 to 256
tokens, seeded, in random order), random token ids, advantages of both signs. Sides:
- full: `grpo.learner.update.update` as the default recipe runs it (rows sorted by length into micro-batches of
  `--micro`, right-padded, full logits), token-mean loss, AdamW, mu = 1;
- chunked: the same with `grpo.logprob_chunk_tokens: --chunk` (the head on the completion positions only);
- packed: chunked and `grpo.pack: true` (padding-free rows, `--micro` rows of the longest sequence each);
- packed-bf16: packed under `model.mixed_precision: bf16` (the head stays fp32);
- packed-compiled: packed, the model's forward under `torch.compile(dynamic=True)` (tried for issue 26, not a
  config key: the compile is the first, untimed step's `first_step_s`);
- trl / trl-bf16: TRL's `GRPOTrainer` training step on the same batch (its `compute_loss`, loss_type dapo, beta 0,
  its fused LM head, micro-batches of `--micro` rows in the batch's order, `bf16=True` for trl-bf16), then the
  same gradient clipping and AdamW step.
Models: `small` (the 19M preset, 262-token vocabulary), `anchor` (bench/grpo_step.py's 3.2M model: hidden 256,
4 layers, our character-level vocabulary) and `qwen-vocab` (Qwen2 with Qwen2.5's 151,936-token
vocabulary, hidden 256, 2 layers, tied embeddings: the output head is most of the work and of the memory). Each
side runs in a fresh process, one after the other, so its peak resident memory is its own: `peak_rss_mib` is the
process's high-water mark and `update_rss_mib` what the update added above the loaded model. `tokens_per_s`
counts non-padding tokens (prompt + completion) per second of update, the first step untimed. The last line
printed is one JSON object with every side and the ratios to `full` and to `trl`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import time

from bench import SideFailed, run_side


def build(model: str):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from grpo.model import build_model, build_tokenizer

    torch.manual_seed(0)
    if model == "small":
        return build_model("small", build_tokenizer(), seed=0)
    if model == "anchor":
        from bench.grpo_step import MODELS

        tokenizer = build_tokenizer()
        return Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), **MODELS["anchor"], max_position_embeddings=512,
                                            tie_word_embeddings=True, bos_token_id=None,
                                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    config = Qwen2Config(vocab_size=151936, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True)
    return Qwen2ForCausalLM(config)


def batch(rows: int, vocab: int, seed: int = 0):
    from grpo.learner.update import Sample

    rng = random.Random(seed)
    out = []
    for i in range(rows):
        length = rng.randint(32, 256)
        prompt = [rng.randrange(3, vocab) for _ in range(64)]
        completion = [rng.randrange(3, vocab) for _ in range(length)]
        out.append(Sample(prompt, completion, [-1.0] * length, 1.0 if i % 2 else -1.0, True))
    return out


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def side(args) -> dict:
    import torch

    model = build(args.model)
    samples = batch(args.rows, model.config.vocab_size)
    if args.side.endswith("bf16"):
        if args.side.startswith("trl"):
            pass  # TRL's own autocast (bf16=True)
        else:
            from grpo.model import mixed_precision

            mixed_precision(model, "bf16")
    if args.side == "packed-compiled":
        model.forward = torch.compile(model.forward, dynamic=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    step = trl_step(model, optimizer, samples, args) if args.side.startswith("trl") else ours_step(model, optimizer,
                                                                                                  samples, args)
    loaded = rss_mib()
    tokens = sum(len(s.prompt_ids) + len(s.token_ids) for s in samples)
    seconds = []
    for i in range(args.steps + 1):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    first, seconds = seconds[0], seconds[1:]
    return {"first_step_s": round(first, 2), "tokens_per_s": round(tokens * len(seconds) / sum(seconds), 1),
            "s_per_step": round(sum(seconds) / len(seconds), 2),
            "peak_rss_mib": round(rss_mib()), "update_rss_mib": round(rss_mib() - loaded), "tokens": tokens}


def ours_step(model, optimizer, samples, args):
    from grpo.learner.update import update

    chunk = args.chunk if args.side != "full" else 0  # --chunk 0: packed sides with full logits
    pack = args.side.startswith("packed")  # packed, packed-bf16, packed-compiled
    loss_kwargs = dict(clip_low=0.2, clip_high=0.28, level="token", aggregation="token-mean", kl_coef=0.0,
                       is_cap=None)
    return lambda: update(model, optimizer, None, samples, mu=1, micro_batch_size=args.micro, pad_id=0,
                          temperature=1.0, max_new_tokens=256, max_grad_norm=1.0, loss_kwargs=loss_kwargs,
                          logprob_chunk_tokens=chunk, pack=pack)


def trl_step(model, optimizer, samples, args):
    """TRL's training step on `samples`: its compute_loss on micro-batches of `--micro` rows (prompts left-padded,
    completions right-padded, as its generation step leaves them), backward, clipping, AdamW."""
    import tempfile

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from grpo.model import build_tokenizer

    tokenizer = build_tokenizer()
    out = tempfile.mkdtemp()
    config = GRPOConfig(output_dir=out, per_device_train_batch_size=args.micro, num_generations=2,
                        max_completion_length=256, temperature=1.0, loss_type="dapo", beta=0.0, epsilon=0.2,
                        epsilon_high=0.28, num_iterations=1, use_cpu=True, bf16=args.side.endswith("bf16"),
                        fp16=False, report_to="none", disable_tqdm=True, save_strategy="no")
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                          args=config, train_dataset=Dataset.from_list([{"prompt": "1"}] * 4),
                          processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = 1  # set by its train loop, read by compute_loss
    model = trainer.model
    model.train()
    total = sum(len(s.token_ids) for s in samples)

    def inputs(rows):
        prompt = max(len(s.prompt_ids) for s in rows)
        completion = max(len(s.token_ids) for s in rows)
        batch = {k: torch.zeros((len(rows), n), dtype=torch.long) for k, n in
                 (("prompt_ids", prompt), ("prompt_mask", prompt), ("completion_ids", completion),
                  ("completion_mask", completion))}
        for r, s in enumerate(rows):
            batch["prompt_ids"][r, prompt - len(s.prompt_ids):] = torch.tensor(s.prompt_ids)
            batch["prompt_mask"][r, prompt - len(s.prompt_ids):] = 1
            batch["completion_ids"][r, : len(s.token_ids)] = torch.tensor(s.token_ids)
            batch["completion_mask"][r, : len(s.token_ids)] = 1
        batch["advantages"] = torch.tensor([s.advantage for s in rows])
        batch["num_items_in_batch"] = torch.tensor(float(total))
        return batch

    micro = [inputs(samples[k : k + args.micro]) for k in range(0, len(samples), args.micro)]

    def step():
        for mb in micro:
            trainer.compute_loss(model, mb).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


SIDES = ["full", "chunked", "packed", "packed-bf16", "packed-compiled", "trl", "trl-bf16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["small", "anchor", "qwen-vocab"], default="qwen-vocab")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sides", default=",".join(s for s in SIDES if s != "packed-compiled"))
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args)))
        return
    result = {"model": args.model, "rows": args.rows, "micro_batch_size": args.micro, "chunk_tokens": args.chunk,
              "machine": f"{platform.machine()} {os.cpu_count()} cpus", "torch_threads": torch_threads()}
    for name in args.sides.split(","):
        try:
            result[name] = run_side("bench.learner", [*sys.argv[1:], "--side", name], name)
        except SideFailed as failed:
            result[name] = {"failed": failed.last_error}
        print(name, result[name], flush=True)
    for base in ("full", "trl"):
        if "tokens_per_s" not in result.get(base, {}):
            continue
        for name in args.sides.split(","):
            if name != base and "tokens_per_s" in result.get(name, {}):
                result[f"{name}_vs_{base}"] = {
                    "speed": round(result[name]["tokens_per_s"] / result[base]["tokens_per_s"], 2),
                    "memory_less": round(result[base]["update_rss_mib"] / max(result[name]["update_rss_mib"], 1), 2)}
    print(json.dumps(result))


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
