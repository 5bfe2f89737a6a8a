"""Rejection sampling (the `filter` stage's rule): which teacher traces a student may learn from, and why the
others were dropped.

    kept, report = filter_traces(traces, think_prefix=True, max_per_problem=4, index=SuiteIndex.from_suites(...))

A trace is a dict with `problem_id`, `problem`, `completion` (as generated, after the prompt), `correct` (the
verifier's verdict) and `finish_reason`. Checks, in order, each with its reason in the report:
  contaminated  the problem copies an evaluation problem (grpo/data/decontaminate.py): all its traces go
  truncated     the trace hit the token budget (finish_reason "length")
  malformed     not one `<think>...</think>` block followed by a non-empty answer (when `require_think`)
  rejected      the verifier did not accept it
  duplicate     the same text (whitespace aside) as a kept trace of the same problem
  over_cap      the problem already has `max_per_problem` kept traces (0: no cap)
Pure: the same traces give the same kept list and report.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from grpo.algo.rewards import think_format
from grpo.data.prompts import with_think_prefix

REASONS = ("contaminated", "truncated", "malformed", "rejected", "duplicate", "over_cap")


def filter_traces(traces: list[dict], *, think_prefix: bool, require_think: bool = True, max_per_problem: int = 0,
                  index=None, examples_per_reason: int = 3) -> tuple[list[dict], dict]:
    kept: list[dict] = []
    removed: Counter = Counter()
    examples: dict[str, list[dict]] = defaultdict(list)
    by_suite: Counter = Counter()
    seen: dict[str, set[str]] = defaultdict(set)
    hits: dict[str, object] = {}

    def drop(trace: dict, reason: str, why: str = "") -> None:
        removed[reason] += 1
        if len(examples[reason]) < examples_per_reason:
            examples[reason].append({"problem_id": trace["problem_id"], "why": why or reason,
                                     "completion": trace["completion"][-300:]})

    for trace in traces:
        pid = str(trace["problem_id"])
        if index is not None:
            if pid not in hits:
                hits[pid] = index.match(trace["problem"])
            hit = hits[pid]
            if hit is not None:
                by_suite[hit.suite] += 1
                drop(trace, "contaminated", f"{hit.suite} {hit.id}: '{hit.ngram}'")
                continue
        if trace["finish_reason"] == "length":
            drop(trace, "truncated")
            continue
        text = with_think_prefix(trace["completion"], think_prefix)
        if not trace["completion"].strip() or (require_think and not think_format(text)):
            drop(trace, "malformed")
            continue
        if not trace["correct"]:
            drop(trace, "rejected")
            continue
        key = " ".join(trace["completion"].split())
        if key in seen[pid]:
            drop(trace, "duplicate")
            continue
        if max_per_problem and len(seen[pid]) >= max_per_problem:
            drop(trace, "over_cap")
            continue
        seen[pid].add(key)
        kept.append(trace)
    report = {"traces": len(traces), "kept": len(kept), "problems": len({str(t["problem_id"]) for t in traces}),
              "problems_kept": len({str(t["problem_id"]) for t in kept}),
              "removed": {r: removed[r] for r in REASONS}, "contaminated_by_suite": dict(by_suite),
              "examples": dict(examples)}
    return kept, report
