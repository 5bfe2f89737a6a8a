"""Benchmark: does bf16 pay on this CPU? `python -m bench.bf16_cpu [--presets tiny] [--rows 128] [--length 150]`

Two measurements, fp32 against bf16, in one process with nothing else running:
- matrix products of the presets' learner shapes (rows x hidden by hidden x width), GFLOP/s;
- one forward and backward of a freshly built preset on `rows` sequences of `length` tokens, fp32 against
  `model.mixed_precision: bf16` (autocast over fp32 weights, as the trainer runs it), seconds (the best of 3).
It prints the CPU's bf16 instructions as torch sees them (`grpo.model.cpu_has_bf16`); the last line is one JSON object.
On a CPU with AVX-512 BF16 or AMX, bf16 is the faster of the two; on an AVX2-only one it is about 10x slower, which
is why a run asking for bf16 there prints a warning.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    return 2 * m * k * n / best_of(lambda: a @ b.t()) / 1e9


def train_pass_s(preset: str, rows: int, length: int, bf16: bool) -> float:
    from grpo.model import build_model, build_tokenizer, mixed_precision

    tokenizer = build_tokenizer()
    model = mixed_precision(build_model(preset, tokenizer, seed=0).to("cpu"), "bf16" if bf16 else "no")
    ids = torch.randint(0, len(tokenizer), (rows, length), generator=torch.Generator().manual_seed(0))

    def one() -> None:
        model.zero_grad(set_to_none=True)
        model(ids).logits.float().logsumexp(-1).mean().backward()

    return best_of(one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny",
                        help="comma-separated; small takes over 20 min on a CPU without bf16 instructions")
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--length", type=int, default=150)
    args = parser.parse_args()
    from grpo.model import PRESETS, cpu_has_bf16

    result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "cpu_has_bf16": cpu_has_bf16(), "matmul": [], "train_pass": []}
    print(f"CPU: {result['cpu_capability']}, bf16 instructions: {result['cpu_has_bf16']}, {result['threads']} threads")
    tokens = args.rows * args.length
    for preset in args.presets.split(","):
        hidden, width = PRESETS[preset]["hidden_size"], PRESETS[preset]["intermediate_size"]
        for k, n in ((hidden, width), (width, hidden)):
            fp32, bf16 = matmul_gflops(tokens, k, n, torch.float32), matmul_gflops(tokens, k, n, torch.bfloat16)
            row = {"preset": preset, "shape": [tokens, k, n], "fp32_gflops": round(fp32, 1),
                   "bf16_gflops": round(bf16, 1), "bf16_over_fp32": round(bf16 / fp32, 2)}
            result["matmul"].append(row)
            print(f"matmul {tokens}x{k} @ {k}x{n}: fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} ({bf16 / fp32:.2f}x)")
        fp32_s = train_pass_s(preset, args.rows, args.length, bf16=False)
        bf16_s = train_pass_s(preset, args.rows, args.length, bf16=True)
        result["train_pass"].append({"preset": preset, "rows": args.rows, "length": args.length,
                                     "fp32_s": round(fp32_s, 3), "bf16_s": round(bf16_s, 3),
                                     "bf16_speedup": round(fp32_s / bf16_s, 2)})
        print(f"{preset} forward + backward, {args.rows} x {args.length} tokens: fp32 {fp32_s:.2f} s, bf16 autocast "
              f"{bf16_s:.2f} s ({fp32_s / bf16_s:.2f}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
