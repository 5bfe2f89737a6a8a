"""Benchmark: sandboxed runs against plain python3 subprocesses, in the same run.

    python -m bench.sandbox [--runs 200] [--workers 1 2]

Two workloads, each with 1 and 2 concurrent workers:
- trivial: the program `print(1)`, one run = one program start. Ours: `sandbox.run` (bubblewrap, all
  namespaces, rlimits, private uid). Baseline: `python3 -I -S -c` as a bare subprocess (no isolation at all).
- 10 tests: grading one stdin problem with 10 tests. Ours: `verifiers.code.verify` (one sandbox, the
  bootstrap forks per test, outputs compared outside). Baseline: 10 bare `python3 -I -S` subprocesses, one
  per test, outputs compared with the same rule.
Both sides use the same interpreter (the sandbox's). Prints runs/s, median and p90 latency, and the ratio
ours/baseline; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

SOLUTION = "n = int(input())\nprint(sum(i * i for i in range(n)))\n"
TESTS = [{"input": f"{n}\n", "output": f"{sum(i * i for i in range(n))}\n", "testtype": "stdin"} for n in range(10)]
PROBLEM = {"public_test_cases": TESTS, "metadata": {}}


def measure(fn, runs: int, workers: int) -> dict:
    latencies = []

    def one(_):
        start = time.perf_counter()
        ok = fn()
        latencies.append(time.perf_counter() - start)
        return ok

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        oks = list(pool.map(one, range(runs)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"runs_per_s": round(runs / seconds, 1), "median_ms": round(statistics.median(latencies) * 1000, 2),
            "p90_ms": round(latencies[int(0.9 * (len(latencies) - 1))] * 1000, 2), "all_correct": all(oks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per cell")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import sandbox
    from verifiers.code import stdout_matches, verify

    box = sandbox.default_sandbox()
    python = str(box.python)

    def plain_trivial() -> bool:
        p = subprocess.run([python, "-I", "-S", "-c", "print(1)"], capture_output=True, timeout=30)
        return p.stdout == b"1\n"

    def ours_trivial() -> bool:
        return sandbox.run("print(1)", timeout_s=10, sandbox=box).stdout == "1\n"

    def plain_ten() -> bool:
        for case in TESTS:
            p = subprocess.run([python, "-I", "-S", "-c", SOLUTION], input=case["input"].encode(), capture_output=True,
                               timeout=30)
            if p.returncode != 0 or not stdout_matches(p.stdout.decode(), case["output"]):
                return False
        return True

    def ours_ten() -> bool:
        return verify(f"```python\n{SOLUTION}```", PROBLEM, sandbox=box).correct

    result = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": python, "cells": []}
    for workload, ours, plain, runs in (("trivial", ours_trivial, plain_trivial, args.runs),
                                        ("10 tests", ours_ten, plain_ten, max(args.runs // 4, 10))):
        for workers in args.workers:
            measure(ours, 5, workers), measure(plain, 5, workers)  # warm caches
            o, b = measure(ours, runs, workers), measure(plain, runs, workers)
            cell = {"workload": workload, "workers": workers, "ours": o, "plain_subprocess": b,
                    "ratio_runs_per_s": round(o["runs_per_s"] / b["runs_per_s"], 2)}
            print(f"{workload:>8} x{workers}: ours {o}  plain {b}  ratio {cell['ratio_runs_per_s']}")
            result["cells"].append(cell)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
