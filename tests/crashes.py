"""A run that crashes mid-training, in this process, then resumes: for the exact-resume tests."""

import pytest

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
