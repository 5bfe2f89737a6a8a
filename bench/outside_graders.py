"""Our math verifier on other graders' public test cases, every disagreement classified.

    python -m bench.outside_graders

The cases (bench/data/outside_graders/, data only, each with its source file, line and commit):
- Math-Verify (huggingface/Math-Verify@5d148cf, tests/): 270 (gold, prediction, verdict) cases;
- Hendrycks MATH (hendrycks/math@985bdc1, modeling/math_equivalence_test.py): 16 cases of `is_equiv`.
The Qwen2.5-Math grader (`math_equal`, QwenLM/Qwen2.5-Math evaluation/grader.py) and the PRM800K grader
(openai/prm800k grading/grader.py) ship no test cases with verdicts, so there is nothing of theirs to run.

Each case is judged by `verifiers.math.verify_batch(prediction, gold)`. A disagreement with the case's verdict is
looked up in classified.json: `policy` (our written policy decides otherwise, docs/math_policy.md), `theirs` (a
wrong verdict in their test, or an input no model writes), or `ours` (a bug of ours: none is left). The last line
printed is one JSON object: cases, agreements, and the disagreements per class and family; unclassified ones are
listed and make the exit status 1.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "outside_graders"
SOURCES = ("math_verify", "hendrycks_math")


def disagreements() -> tuple[int, list[dict]]:
    """(cases, the cases whose verdict ours does not share, each with ours)."""
    from verifiers.math import verify_batch

    rows = [json.loads(line) for name in SOURCES for line in (DATA / f"{name}.jsonl").read_text().splitlines()]
    results = verify_batch([r["prediction"] for r in rows], [r["gold"] for r in rows], workers=2, timeout_s=10)
    return len(rows), [dict(r, ours=res.reason, extracted=res.extracted)
                       for r, res in zip(rows, results) if res.correct != r["expected"]]


def main() -> int:
    classified = json.loads((DATA / "classified.json").read_text())
    cases, differ = disagreements()
    unclassified = [d for d in differ if d["source"] not in classified]
    for d in differ:
        c = classified.get(d["source"], {"class": "UNCLASSIFIED", "family": "", "why": ""})
        print(f"{c['class']:>12} {c['family']:<16} {d['source'].split(':', 1)[1][:60]:<60} "
              f"gold {d['gold'][:40]!r} pred {d['prediction'][-40:]!r}: theirs {d['expected']}, ours {d['ours']}")
    summary = {"cases": cases, "agree": cases - len(differ), "disagree": len(differ),
               "by_class": dict(Counter(classified.get(d["source"], {}).get("class", "unclassified") for d in differ)),
               "by_family": dict(Counter(classified.get(d["source"], {}).get("family", "unclassified")
                                         for d in differ)),
               "unclassified": [d["source"] for d in unclassified]}
    print(json.dumps(summary))
    return 1 if unclassified else 0


if __name__ == "__main__":
    sys.exit(main())
