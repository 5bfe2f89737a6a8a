"""For the exact-resume tests: a run that crashes mid-training in this process and resumes; what two runs wrote,
in a form to compare."""

import json

import pytest
from safetensors.torch import load_file

import grpo.learner.policy
from grpo import train
from grpo.runs.checkpoint import latest_checkpoint
from grpo.stages.grpo import CHECKPOINTS


def interrupt(monkeypatch, owner, name: str, *, at: int) -> None:
    """From now on `owner.name` raises KeyboardInterrupt (a simulated kill) on its `at`-th call."""
    real, calls = getattr(owner, name), {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt("simulated crash")
        return real(*a, **k)

    crashing.__wrapped__ = real
    monkeypatch.setattr(owner, name, crashing)


def count_calls(monkeypatch, owner, name: str) -> dict:
    """From now on the calls of `owner.name` (unwrapped from `interrupt`) are counted in the returned {"n"}."""
    current = getattr(owner, name)
    real, calls = getattr(current, "__wrapped__", current), {"n": 0}

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(owner, name, counting)
    return calls


def crash_then_resume(monkeypatch, run_dir, args: list[str], *, crash_at: int, checkpoint: str,
                      inside: tuple = (grpo.learner.policy, "update")) -> None:
    """Run `args` into `run_dir`, raise KeyboardInterrupt inside the `crash_at`-th call of `inside` (module, name:
    the learner's update, or e.g. `prune_checkpoints`: just after a checkpoint is complete), check that `checkpoint`
    is the newest complete one, then `--resume` the run to its end."""
    owner, name = inside
    interrupt(monkeypatch, owner, name, at=crash_at)
    with pytest.raises(KeyboardInterrupt):
        train.main([f"run.dir={run_dir}", *args])
    monkeypatch.setattr(owner, name, getattr(owner, name).__wrapped__)
    assert latest_checkpoint(run_dir / CHECKPOINTS).name == checkpoint
    assert train.main(["--resume", str(run_dir)]) == 0


def weights(path):
    """The tensors of a saved model directory."""
    return load_file(str(path / "model.safetensors"))


def logged(run_dir):
    """metrics.jsonl without timings (perf/generated_tokens, a count, stays)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/") or k == "perf/generated_tokens"} for r in rows]

