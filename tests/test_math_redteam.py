"""Regressions from a red-team pass over the verifier (tests/data/math_redteam.jsonl): reward hacks that
used to score (thousands separators inside brackets, lossy text matching, "$3$ or $4$" after an answer phrase,
planted 1e-50 perturbations, positive-only sample points, digits glued across spaces, inconsistent relation
chains, unit words that change the value), realistic answers that used to be rejected (\\pm and "or" in golds,
relations with functions, answer phrases, \\text annotations, matrix spellings), a crash and CAS stalls."""

import json
import time
from pathlib import Path

from verifiers.math import verify_batch

ROWS = [json.loads(line) for line in (Path(__file__).parent / "data" / "math_redteam.jsonl").read_text().splitlines()]


def test_every_red_team_case_gets_its_verdict_quickly():
    start = time.monotonic()
    results = verify_batch([r["completion"] for r in ROWS], [r["gold"] for r in ROWS], workers=2, timeout_s=5)
    wrong = [(r["id"], r["class"], r["gold"], r["completion"][-60:], v.reason)
             for r, v in zip(ROWS, results) if v.correct != r["expected"]]
    assert not wrong
    assert not [r["id"] for r, v in zip(ROWS, results) if v.reason in ("error", "timeout")]
    assert time.monotonic() - start < 30
