"""Real benchmark data: MATH-500 and GSM8K reference solutions must verify against their own golds,
and different golds must not verify against each other."""

import json
from pathlib import Path

import pytest

from verifiers.math import verify_batch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "math500.jsonl").exists(), reason=f"no benchmark data at {DATA}")


def _rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def test_every_math500_reference_solution_is_correct():
    rows = _rows("math500.jsonl")
    results = verify_batch([r["solution"] for r in rows], [r["answer"] for r in rows], workers=2)
    wrong = [(r["unique_id"], r["answer"], v) for r, v in zip(rows, results) if not v.correct]
    assert not wrong, wrong[:5]


def test_every_gsm8k_reference_solution_is_correct():
    rows = _rows("gsm8k_test.jsonl")
    golds = [r["answer"].split("####")[-1].strip() for r in rows]
    results = verify_batch([r["answer"] for r in rows], golds, workers=2)
    wrong = [(g, v) for g, v in zip(golds, results) if not v.correct]
    assert not wrong, wrong[:5]


def test_math500_golds_do_not_match_other_golds():
    golds = [r["answer"] for r in _rows("math500.jsonl")]
    pairs = [(golds[i], golds[(7 * i + 13 * k) % len(golds)]) for k in range(1, 4) for i in range(len(golds))]
    pairs = [(g, p) for g, p in pairs if g.replace(" ", "") != p.replace(" ", "")]
    results = verify_batch([f"So the answer is $\\boxed{{{p}}}$." for _, p in pairs], [g for g, _ in pairs], workers=2)
    false_positives = [pair for pair, v in zip(pairs, results) if v.correct]
    assert not false_positives, false_positives[:5]
