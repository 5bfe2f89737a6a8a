"""For the exact-resume tests: a run that crashes mid-training in this process and resumes; what two runs wrote,
in a form to compare."""

import json

import pytest
from safetensors.torch import load_file

import grpo.trainer
from grpo import train
from grpo.runfiles import latest_checkpoint
from grpo.trainer import CHECKPOINTS


def crash_then_resume(monkeypatch, run_dir, args: list[str], *, crash_at: int, checkpoint: str) -> None:
    """Run `args` into `run_dir`, raise KeyboardInterrupt inside the `crash_at`-th update, check that
    `checkpoint` is the newest complete one, then `--resume` the run to its end."""
    real_update, calls = grpo.trainer.update, {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return real_update(*a, **k)

    monkeypatch.setattr(grpo.trainer, "update", crashing)
    with pytest.raises(KeyboardInterrupt):
        train.main([f"run.dir={run_dir}", *args])
    monkeypatch.setattr(grpo.trainer, "update", real_update)
    assert latest_checkpoint(run_dir / CHECKPOINTS).name == checkpoint
    assert train.main(["--resume", str(run_dir)]) == 0


def weights(path):
    """The tensors of a saved model directory."""
    return load_file(str(path / "model.safetensors"))


def logged(run_dir):
    """metrics.jsonl without timings (perf/generated_tokens, a count, stays)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/") or k == "perf/generated_tokens"} for r in rows]

