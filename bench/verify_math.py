"""Benchmark: our math verifier against plain math-verify on the labeled set, in one run.

    python -m bench.verify_math [--labeled tests/data/math_labeled.jsonl] [--workers 2] [--timeout 5]

Ours: `verifiers.math.verify_batch` with `--workers` processes (pool start-up included in the time).
Baseline: math-verify used plainly, as most trainers do: `parse(gold)`, `parse(completion)` with default
extraction, `verify(gold, pred)`, one case after another in this process (its own 5 s signal timeouts).
It is run twice: with the gold wrapped in `\\boxed{}` first (what verl and TRL recipes do, and its better
setting), then with the gold string as given (a bare `(2, 12)` or `\\text{Evelyn}` does not parse that way).
Figures: accuracy, false-positive rate (wrongly accepted / cases labeled wrong), false-negative rate (wrongly
rejected / cases labeled correct), cases per second, the slowest single case, and per category of the set the
false negatives and false positives of each side (`by_category`; the recall families of issue 25: scientific,
spaced_thousands, infinity_words, zero_imaginary, python_operators, named_tuples, several_tuples, plus_minus,
scaled_matrices, chains, closings). The last line printed is one JSON object with both sides' figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

LABELED = Path(__file__).resolve().parent.parent / "tests" / "data" / "math_labeled.jsonl"


def scores(expected: list[bool], got: list[bool]) -> dict:
    positives = sum(expected)
    negatives = len(expected) - positives
    fp = sum(1 for e, g in zip(expected, got) if g and not e)
    fn = sum(1 for e, g in zip(expected, got) if e and not g)
    return {
        "accuracy": round(1 - (fp + fn) / len(expected), 4),
        "false_positive_rate": round(fp / max(negatives, 1), 4),
        "false_negative_rate": round(fn / max(positives, 1), 4),
        "false_positives": fp,
        "false_negatives": fn,
    }


def by_category(rows: list[dict], got: list[bool]) -> dict:
    """{category: "FN/FP of n"} for one side."""
    out: dict[str, list[int]] = {}
    for r, g in zip(rows, got):
        fn_fp_n = out.setdefault(r["category"], [0, 0, 0])
        fn_fp_n[0] += r["expected"] and not g
        fn_fp_n[1] += g and not r["expected"]
        fn_fp_n[2] += 1
    return {c: f"{fn}/{fp} of {n}" for c, (fn, fp, n) in out.items()}


def run_ours(rows: list[dict], workers: int, timeout_s: float) -> tuple[list[bool], dict]:
    from verifiers.pool import OK, WorkerPool

    start = time.perf_counter()
    with WorkerPool("verifiers.math:judge_item", workers=workers, memory_mb=2048) as pool:
        outcomes = pool.map([(r["completion"], r["gold"], False) for r in rows], timeout_s)
    seconds = time.perf_counter() - start
    got = [o.status == OK and o.value.correct for o in outcomes]
    slowest = max(o.seconds for o in outcomes)
    reasons: dict[str, int] = {}
    for o in outcomes:
        key = o.value.reason if o.status == OK else o.status
        reasons[key] = reasons.get(key, 0) + 1
    return got, {"seconds": round(seconds, 2), "cases_per_s": round(len(rows) / seconds, 1),
                 "slowest_case_s": round(slowest, 3), "timeout_s": timeout_s, "reasons": reasons}


def run_math_verify(rows: list[dict], wrap_gold: bool) -> tuple[list[bool], dict]:
    from math_verify import parse, verify

    got, slowest = [], 0.0
    start = time.perf_counter()
    for r in rows:
        t = time.perf_counter()
        gold = f"\\boxed{{{r['gold']}}}" if wrap_gold else r["gold"]
        try:
            ok = bool(verify(parse(gold), parse(r["completion"])))
        except BaseException as e:  # its TimeoutException is a BaseException
            if isinstance(e, KeyboardInterrupt):
                raise
            ok = False
        slowest = max(slowest, time.perf_counter() - t)
        got.append(ok)
    seconds = time.perf_counter() - start
    return got, {"seconds": round(seconds, 2), "cases_per_s": round(len(rows) / seconds, 1),
                 "slowest_case_s": round(slowest, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labeled", type=Path, default=LABELED, help="labeled JSONL (gold, completion, expected)")
    parser.add_argument("--workers", type=int, default=2, help="our worker processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="our per-case wall-clock limit, seconds")
    parser.add_argument("--skip-baseline", action="store_true", help="measure ours only")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.labeled.read_text().splitlines() if line.strip()]
    expected = [bool(r["expected"]) for r in rows]
    print(f"{len(rows)} labeled cases from {args.labeled} ({sum(expected)} correct, {len(rows) - sum(expected)} wrong)")

    got, ours = run_ours(rows, args.workers, args.timeout)
    ours.update(scores(expected, got), workers=args.workers)
    ours["by_category"] = by_category(rows, got)
    missed = [(r["id"], r["category"]) for r, e, g in zip(rows, expected, got) if e != g]
    print(f"ours: {ours}")
    print(f"ours, disagreements with the labels: {missed}")

    result = {"cases": len(rows), "machine": f"{platform.machine()} {os.cpu_count()} cpus", "ours": ours}
    if not args.skip_baseline:
        for name, wrap in (("math_verify", True), ("math_verify_gold_as_given", False)):
            got_mv, baseline = run_math_verify(rows, wrap_gold=wrap)
            baseline.update(scores(expected, got_mv))
            baseline["by_category"] = by_category(rows, got_mv)
            print(f"{name}: {baseline}")
            result[name] = baseline
        result["speedup"] = round(ours["cases_per_s"] / result["math_verify"]["cases_per_s"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
