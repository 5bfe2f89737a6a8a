"""Benchmark: one GRPO optimizer step of the learner, full logits against chunked logprobs, in one run.

    python -m bench.learner [--model small|qwen-vocab] [--rows 32] [--micro 8] [--chunk 2048] [--steps 2]

The batch: `--rows` completions of unequal lengths (prompts of 64 tokens, completions drawn from 32 to 256
tokens, seeded), random token ids, advantages of both signs; one `grpo.learner.update.update` call per step
(token-mean loss, AdamW, mu = 1), micro-batches of `--micro` rows. Models: `small` (the 19M preset, 262-token
vocabulary) and `qwen-vocab` (Qwen2 with Qwen2.5's 151,936-token vocabulary, hidden 256, 2 layers, tied
embeddings: the output head is most of the work and of the memory, which is the point). Each side runs in a
fresh process, one after the other, so its peak resident memory is its own: `peak_rss_mib` is the process's
high-water mark and `update_rss_mib` what the update added above the loaded model. `tokens_per_s` counts
non-padding tokens (prompt + completion) per second of update, the first step untimed. The last line printed is
one JSON object with both sides and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time


def build(model: str):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from grpo.model import build_model, build_tokenizer

    torch.manual_seed(0)
    if model == "small":
        return build_model("small", build_tokenizer(), seed=0)
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

    from grpo.learner.update import update

    model = build(args.model)
    samples = batch(args.rows, model.config.vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loaded = rss_mib()
    tokens = sum(len(s.prompt_ids) + len(s.token_ids) for s in samples)
    seconds = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        update(model, optimizer, None, samples, mu=1, micro_batch_size=args.micro, pad_id=0, temperature=1.0,
               max_new_tokens=256, max_grad_norm=1.0,
               loss_kwargs=dict(clip_low=0.2, clip_high=0.28, level="token", aggregation="token-mean", kl_coef=0.0,
                                is_cap=None), logprob_chunk_tokens=args.chunk if args.side == "chunked" else 0)
        if step:
            seconds.append(time.perf_counter() - start)
    return {"tokens_per_s": round(tokens * len(seconds) / sum(seconds), 1),
            "s_per_step": round(sum(seconds) / len(seconds), 2),
            "peak_rss_mib": round(rss_mib()), "update_rss_mib": round(rss_mib() - loaded), "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["small", "qwen-vocab"], default="qwen-vocab")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--side", choices=["full", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args)))
        return
    result = {"model": args.model, "rows": args.rows, "micro_batch_size": args.micro, "chunk_tokens": args.chunk,
              "machine": f"{platform.machine()} {os.cpu_count()} cpus"}
    for name in ("full", "chunked"):
        done = subprocess.run([sys.executable, "-m", "bench.learner", *sys.argv[1:], "--side", name],
                              capture_output=True, text=True, check=True)
        result[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, result[name], flush=True)
    full, chunked = result["full"]["update_rss_mib"], result["chunked"]["update_rss_mib"]
    result["memory_ratio_update"] = round(full / max(chunked, 1), 2)
    result["speed_ratio"] = round(result["chunked"]["tokens_per_s"] / result["full"]["tokens_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
