"""What training computes, pinned: the session's cold start (`base`) and a few GRPO steps from it (KL reference,
two passes per batch, checkpoints; tests/reference_run.py) log the metrics stored in tests/data/reference_run.json,
written by the code before grpo/ was reorganised (issue 21). A refactor must keep them; a change meant to alter
training rewrites the file (`python tests/reference_run.py`) and says so."""

import json

import pytest
from reference_run import REFERENCE, grpo_run, pinned

EXPECTED = json.loads(REFERENCE.read_text())


def _same(got: dict, expected: dict) -> None:
    assert got["heldout_accuracy"] == pytest.approx(expected["heldout_accuracy"], abs=1e-4)
    assert set(got["lines"]) == set(expected["lines"])
    for line, metrics in expected["lines"].items():
        for name, value in metrics.items():
            assert got["lines"][line][name] == pytest.approx(value, rel=1e-4, abs=1e-4), f"{line} {name}"


def test_the_cold_start_logs_the_pinned_metrics(base):
    _same(pinned(base.parent), EXPECTED["base"])


def test_grpo_logs_the_pinned_metrics(tmp_path, base):
    got = grpo_run(tmp_path / "run", base)
    assert any(m["reward/zero_std_frac"] < 1 for k, m in got["lines"].items() if k.endswith(":step")), \
        "no group had varied rewards: the pinned update would be trivial"
    _same(got, EXPECTED["grpo"])
