"""What the stages write into a run dir: JSONL lines, held-out evaluations, atomic checkpoints.

A checkpoint is a directory: the model and tokenizer (Hugging Face format), `trainer_state.pt` (the stage's
own resume state) and optional extra state dicts (`<name>.pt`). It is written to `<dir>.tmp` and renamed into
place, so a crash never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from grpo.data import read_jsonl
from grpo.evaluate import GREEDY, EvalProtocol, by_problem, heldout_accuracy


def drop_after(path: Path, stage: str, step: int) -> None:
    """Remove lines of `stage` logged after `step` (what a crashed run wrote past its last checkpoint, a last
    line cut short by the kill included)."""
    if not path.exists():
        return
    rows = [row for _, row in read_jsonl(path, torn_tail_ok=True)]
    kept = [r for r in rows if not (r.get("stage") == stage and r.get("step", 0) > step)]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def append_jsonl(path: Path, rows) -> None:
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def log_heldout(model, tokenizer, examples, run_dir: Path, *, stage: str, step: int, max_new_tokens: int,
                think_prefix: bool, n_samples: int, protocol: EvalProtocol = GREEDY, engine=None,
                **sample_fields) -> float:
    """Held-out accuracy (pass@1 over `protocol.n` samples per problem), written as an `eval/heldout_accuracy`
    metric line with `eval/heldout/pass@k`, `maj@k` and standard errors, plus the first `n_samples` completions in
    samples.jsonl (tagged with stage, step and `sample_fields`)."""
    accuracy, samples = heldout_accuracy(model, tokenizer, examples, max_new_tokens=max_new_tokens,
                                         think_prefix=think_prefix, protocol=protocol, engine=engine)
    line = {"stage": stage, "step": step, "eval/heldout_accuracy": accuracy}
    if samples:  # the names and the function `python -m evals.run` uses (evals/metrics.py)
        from evals.metrics import suite_metrics

        line.update({f"eval/heldout/{k}": v for k, v in suite_metrics(by_problem(samples)).items()})
    append_jsonl(run_dir / "metrics.jsonl", [line])
    append_jsonl(run_dir / "samples.jsonl",
                 [dict(s, stage=stage, step=step, **sample_fields) for s in samples[:n_samples]])
    return accuracy


class CheckpointError(OSError):
    """A checkpoint could not be written (disk full, permissions); the previous one is untouched."""


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: readers see the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, model, tokenizer, state: dict, extra_state_dicts: dict | None = None, *,
                    weights: dict | None = None) -> None:
    """model (its own weights, or `weights` in its place) + tokenizer + `state` (trainer_state.pt) + extra state
    dicts, atomically: everything goes to `<path>.tmp`, is flushed to disk, then renamed. A failure (disk full)
    removes the temporary directory and raises CheckpointError; checkpoints written before are untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        torch.save(state, tmp / "trainer_state.pt")
        for name, tensors in (extra_state_dicts or {}).items():
            torch.save(tensors, tmp / f"{name}.pt")
        for file in tmp.iterdir():
            with file.open("rb") as f:
                os.fsync(f.fileno())
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(path.parent)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint {path}: {e}; {kept}") from e
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def step_dirs(root: Path) -> list[Path]:
    """`root/step_<n>` directories, oldest first (temporary `.tmp` directories are not steps)."""
    steps = [p for p in root.glob("step_*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(steps, key=lambda p: int(p.name[5:]))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`."""
    complete = [p for p in step_dirs(root) if (p / "trainer_state.pt").exists()]
    return complete[-1] if complete else None


def prune_checkpoints(root: Path, keep: int) -> None:
    for old in step_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
