"""Benchmark: `python -m evals.run` on MATH-500 with n=4, vLLM engine against the transformers engine, one run.

    python -m bench.eval [--limit 100] [--max-new-tokens 128] [--suite math500 --n 4 --engines vllm,hf]

The model is the tiny preset freshly initialised with a `--context` token context (MATH-500 prompts run to
~1,500 characters, LiveCodeBench's to ~4,000, and the tokenizer is character-level), saved once; each engine
evaluates the first `--limit` problems under the R1 preset (T 0.6, top-p 0.95, n) in its own subprocess, the
whole command timed
(model load, engine start, generation, grading, report). Figure: problems per second. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--suite", default="math500")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--engines", default="vllm,hf", help="comma-separated; the speedup needs both")
    args = parser.parse_args()
    from grpo.model import build_model, build_tokenizer

    result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "suite": args.suite, "n": args.n,
              "problems": args.limit, "max_new_tokens": args.max_new_tokens}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer()
        build_model("tiny", tokenizer, max_position_embeddings=args.context).save_pretrained(f"{tmp}/model")
        tokenizer.save_pretrained(f"{tmp}/model")
        for engine in args.engines.split(","):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "evals.run", "--suite", args.suite, "--model", f"{tmp}/model",
                                  "--output-dir", f"{tmp}/{engine}", "--limit", str(args.limit), "--n", str(args.n),
                                  "--max-new-tokens", str(args.max_new_tokens), "--engine", engine],
                                 capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if out.returncode != 0:
                sys.exit(f"{engine} failed:\n{out.stderr[-3000:]}")
            results = json.loads(open(f"{tmp}/{engine}/{args.suite}/results.json").read())
            result[engine] = {"seconds": round(seconds, 1), "problems_per_s": round(args.limit / seconds, 3),
                              "mean_length_tokens": round(results["metrics"]["mean_length_tokens"], 1),
                              "pass@1": results["metrics"]["pass@1"], "samples": results["n"] * results["problems"]}
            print(f"{engine}: {result[engine]}", flush=True)
    if "vllm" in result and "hf" in result:
        result["speedup"] = round(result["vllm"]["problems_per_s"] / result["hf"]["problems_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
