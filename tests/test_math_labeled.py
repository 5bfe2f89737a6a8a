"""The labeled set (tests/data/math_labeled.jsonl): accuracy and false-positive targets, reasons, deadlines.

The set is written by tests/data/make_math_labeled.py from hand-labeled tables and real MATH-500 / GSM8K
solutions; labels follow docs/math_policy.md and were never taken from a verifier's output.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from verifiers.pool import OK, WorkerPool

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TIMEOUT_S = 5.0
ROWS = [json.loads(line) for line in (DATA / "math_labeled.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def outcomes():
    with WorkerPool("verifiers.math:judge_item", workers=2, memory_mb=2048) as pool:
        return pool.map([(r["completion"], r["gold"], False) for r in ROWS], TIMEOUT_S)


def test_the_set_is_large_and_balanced():
    assert len(ROWS) >= 300
    assert 0.35 < sum(r["expected"] for r in ROWS) / len(ROWS) < 0.65
    assert len({r["category"] for r in ROWS}) >= 15


def test_accuracy_and_false_positive_targets(outcomes):
    got = [o.status == OK and o.value.correct for o in outcomes]
    expected = [r["expected"] for r in ROWS]
    false_positives = [r["id"] for r, g in zip(ROWS, got) if g and not r["expected"]]
    false_negatives = [r["id"] for r, g in zip(ROWS, got) if r["expected"] and not g]
    accuracy = 1 - (len(false_positives) + len(false_negatives)) / len(ROWS)
    assert accuracy >= 0.98, (false_positives, false_negatives)
    assert len(false_positives) / (len(expected) - sum(expected)) <= 0.005, false_positives


def test_reasons_match_the_labels(outcomes):
    mismatched = []
    for r, o in zip(ROWS, outcomes):
        got = o.value.reason if o.status == OK else o.status
        if r["reason"] == "refused" and got not in ("refused", "timeout"):
            mismatched.append((r["id"], r["reason"], got))
        elif r["reason"] in ("no_answer", "multiple_answers") and got != r["reason"]:
            mismatched.append((r["id"], r["reason"], got))
    assert not mismatched


def test_no_case_returns_later_than_its_limit_plus_one_second(outcomes):
    slow = [(r["id"], round(o.seconds, 2)) for r, o in zip(ROWS, outcomes) if o.seconds > TIMEOUT_S + 1.0]
    assert not slow
    assert all(o.status in (OK, "timeout") for o in outcomes), "a case crashed or errored a worker"


@pytest.mark.skipif(not (SHARED / "math500.jsonl").exists(), reason=f"no benchmark data at {SHARED}")
def test_the_committed_set_is_what_the_script_writes(tmp_path):
    out = tmp_path / "labeled.jsonl"
    subprocess.run([sys.executable, str(DATA / "make_math_labeled.py"), "--data-dir", str(SHARED), "--out", str(out)],
                   check=True, capture_output=True)
    assert out.read_text() == (DATA / "math_labeled.jsonl").read_text()
