"""Benchmark: our SFT step against TRL's SFTTrainer on the same tiny model, data and batch, in one run.

    python -m bench.sft [--steps 40] [--batch 32] [--threads 2]     (TRL: pip install -e ".[bench]")

Both sides train the built-in tiny model (fresh, same seed) on the same prompt/completion pairs from the
built-in arithmetic task, completion-only loss, AdamW at the same learning rate, fp32, batch `--batch`, for
`--steps` optimizer steps; the first `--warmup` steps are not timed. Each side runs in its own subprocess so
that its peak memory (max RSS) is its own. Figures: optimizer steps/s, trained (non-padding) tokens/s, peak
RSS, and the learner's model-FLOP utilisation: 6 x parameters x tokens per second against this machine's fp32
matmul peak measured here (torch.matmul on 512..2048 squares, the best rate). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from bench import SideFailed, run_side

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
LR = 2e-3


def _data(n: int):
    from grpo.config import PromptConfig
    from grpo.data.prompts import to_examples
    from grpo.data.tasks import arithmetic
    from grpo.model import build_tokenizer

    tokenizer = build_tokenizer()
    examples = to_examples(arithmetic(n, split="train", seed=0), tokenizer, PromptConfig(template="chat"))
    return tokenizer, examples


def run_ours(steps: int, batch: int, warmup: int) -> dict:
    import random

    from grpo.config import SFTConfig
    from grpo.learner.optim import adamw
    from grpo.learner.supervised import train_step
    from grpo.model import build_model
    from grpo.stages.sft import batches, collate, tokenize

    tokenizer, examples = _data(steps * batch)
    model = build_model("tiny", tokenizer, seed=0)
    sequences, _ = tokenize(examples, tokenizer, 256)
    stream = batches(sequences, batch, random.Random(0))
    optimizer = adamw(model, SFTConfig(lr=LR))
    tokens = 0
    for step in range(steps):
        if step == warmup:
            start, tokens = time.perf_counter(), 0
        batch = collate([sequences[i] for i in next(stream)], tokenizer.pad_token_id)
        tokens += train_step(model, optimizer, [batch], max_grad_norm=1.0)[2]
    seconds = time.perf_counter() - start
    return {"steps_per_s": (steps - warmup) / seconds, "tokens_per_s": tokens / seconds,
            "params": sum(p.numel() for p in model.parameters())}


def run_trl(steps: int, batch: int, warmup: int) -> dict:
    import tempfile

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from grpo.model import build_model

    tokenizer, examples = _data(steps * batch)
    model = build_model("tiny", tokenizer, seed=0)
    data = Dataset.from_list([{"prompt": e.prompt, "completion": e.completion} for e in examples])
    marks: dict = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                marks["start"] = time.perf_counter()
                marks["tokens_at_start"] = state.num_input_tokens_seen

        def on_train_end(self, args, state, control, **kwargs):
            marks["end"] = time.perf_counter()
            marks["tokens"] = state.num_input_tokens_seen

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=LR,
                           lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01, max_grad_norm=1.0,
                           logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True, bf16=False,
                           max_length=256, completion_only_loss=True, dataloader_num_workers=0,
                           include_num_input_tokens_seen="non_padding", seed=0, disable_tqdm=True)
        trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                             callbacks=[Clock()])
        trainer.train()
    seconds = marks["end"] - marks["start"]
    return {"steps_per_s": (steps - warmup) / seconds,
            "tokens_per_s": (marks["tokens"] - marks["tokens_at_start"]) / seconds,
            "params": sum(p.numel() for p in model.parameters())}


def matmul_peak_flops(threads: int) -> float:
    """The best fp32 matmul rate over square sizes 512, 1024 and 2048 (best of 5 timings each)."""
    import torch

    torch.set_num_threads(threads)
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(5):
                a @ b
            best = max(best, 5 * 2 * n**3 / (time.perf_counter() - start))
    return best


def child(side: str, steps: int, batch: int, warmup: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    result = (run_ours if side == "ours" else run_trl)(steps, batch, warmup)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.steps, args.batch, args.warmup, args.threads)
        return
    peak = matmul_peak_flops(args.threads)
    result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "threads": args.threads,
              "batch": args.batch, "steps": args.steps, "fp32_matmul_peak_gflops": round(peak / 1e9, 1)}
    for side in ("ours", "trl"):
        try:
            figures = run_side("bench.sft", ["--side", side, "--steps", str(args.steps), "--warmup", str(args.warmup),
                                             "--batch", str(args.batch), "--threads", str(args.threads)], side)
        except SideFailed as e:
            print(e, file=sys.stderr)
            result[side] = None
            continue
        figures["mfu"] = round(6 * figures["params"] * figures["tokens_per_s"] / peak, 4)
        figures = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
        print(f"{side}: {figures}")
        result[side] = figures
    if result.get("ours") and result.get("trl"):
        result["ratio_tokens_per_s"] = round(result["ours"]["tokens_per_s"] / result["trl"]["tokens_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
