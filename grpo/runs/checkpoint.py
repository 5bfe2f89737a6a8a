"""Checkpoints: what one holds, how it is written (atomically) and how it is put back (exactly).

A checkpoint is a directory: the model and tokenizer (Hugging Face format; under LoRA the merged model, loadable like
any other), `trainer_state.pt` and optional extra state dicts (`<name>.pt`: the KL reference's weights, LoRA's frozen
base and adapters, from which a resumed run rebuilds the adapted model bit for bit). `trainer_state.pt` holds the
step, the optimizer and LR scheduler states (grpo/learner/policy.py says what of the model goes in), the python and
torch RNG states, and the stage's own progress (GRPO: the prompt sampler's position; both: the held-out evaluations
so far and the elapsed seconds; SFT: the tokens trained on). It is written to `<dir>.tmp`, flushed to disk and
renamed into place (one already there, as final/ between stages, is renamed aside first and removed last), so a
crash never leaves a half-written checkpoint under the real name nor loses the one it replaces; a full disk removes
the temporary directory and leaves the previous checkpoint intact. A stage's final model also holds its `stage`
and its `result` (what summary.json records), so a run stopped after it and before summary.json is not trained
again from its own output (grpo/pipeline.py, `finished`).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import torch


class CheckpointError(OSError):
    """A checkpoint could not be written (disk full, permissions); the previous one is untouched."""


def save_checkpoint(path: Path, model, tokenizer, state: dict, extra_state_dicts: dict | None = None, *,
                    weights: dict | None = None) -> None:
    """model (its own weights, or `weights` in its place) + tokenizer + `state` (trainer_state.pt) + extra state
    dicts, atomically: everything goes to `<path>.tmp`, is flushed to disk, then renamed. A failure (disk full)
    removes the temporary directory and raises CheckpointError; checkpoints written before are untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    settle(path)
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
    except Exception as e:  # noqa: BLE001 - a full disk: OSError, torch.save's RuntimeError, safetensors' own error
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(path.parent)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint {path}: {e}; {kept}") from e
    _swap_in(tmp, path)


def _swap_in(tmp: Path, path: Path) -> None:
    """The complete `tmp` in the place of `path`: the one there is renamed aside first and removed last, so a crash
    at any point leaves a complete checkpoint under `path`, or under `<path>.old` beside the complete `tmp`
    (`settle` finishes the swap)."""
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def settle(path: Path) -> None:
    """Finish a swap (`_swap_in`) that a crash interrupted: `path` missing beside `<path>.old` means the complete
    `<path>.tmp` was about to go in (without it, the old one goes back); a `<path>.old` left beside `path` is
    removed."""
    old, tmp = path.with_name(path.name + ".old"), path.with_name(path.name + ".tmp")
    if not old.exists():
        return
    if not path.exists():
        os.replace(tmp if tmp.exists() else old, path)
    shutil.rmtree(old, ignore_errors=True)


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


class Checkpointer:
    """One stage's checkpoints under `root` (<run dir>/checkpoints/<stage>/): `step_<n>/` every `every` steps (0:
    none; the last step too when `at_end`), the newest `keep` of them kept (0: all), and the stage's final model.
    `restore` puts one back into the policy and the run log. Every process calls `save` (under FSDP the optimizer
    state is gathered with all of them); only the main process writes."""

    def __init__(self, root: Path, tokenizer, *, every: int, total: int, keep: int = 0, at_end: bool = False,
                 team):
        self.root, self.tokenizer, self.every, self.total, self.keep = root, tokenizer, every, total, keep
        self.at_end, self.team = at_end, team

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0 and (step < self.total or self.at_end)

    def maybe_save(self, step: int, policy, progress) -> float:
        """A checkpoint after `step` when one is due; `progress()` gives the stage's own state. Returns the seconds it
        took (0.0: not a checkpoint step)."""
        if not self.due(step):
            return 0.0
        start = time.perf_counter()
        self.save(self.root / f"step_{step}", step, policy, progress())
        if self.keep and self.team.is_main:
            prune_checkpoints(self.root, self.keep)
        return time.perf_counter() - start

    def save(self, path: Path, step: int, policy, progress: dict, *, final: bool = False) -> None:
        """`policy`'s state, this process's RNG states and the stage's `progress` at `step`, atomically at `path`."""
        trainer, extras, weights = policy.state(final=final)  # a collective under FSDP
        if not self.team.is_main:
            return
        state = {"step": step, "stage": self.root.name, **trainer, "python_rng": random.getstate(),
                 "torch_rng": torch.get_rng_state(), **progress}
        save_checkpoint(path, policy.view, self.tokenizer, state, extras or None, weights=weights)

    def restore(self, path: Path, policy, log) -> dict:
        """Put the checkpoint at `path` back: the policy's optimizer, schedule and reference, the RNG states, and the
        run log without what an interrupted attempt wrote after it. Returns its trainer state (the stage reads its
        own progress from it)."""
        state = torch.load(path / "trainer_state.pt", weights_only=False, map_location="cpu")
        by_name = any(isinstance(k, str) for k in state["optimizer"]["state"])  # FSDP's layout: parameter names
        if by_name != self.team.sharded:
            raise CheckpointError(f"{path}: its optimizer state was written "
                                  f"{'under FSDP' if by_name else 'by one process or DDP'}; resume it the same way")
        policy.load(state, path)
        if "python_rng" in state:  # SFT checkpoints written before this field existed have the torch state only
            random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.forget_after(state["step"])
        log.say(f"{log.stage}: resumed from {path} at step {state['step']}")
        return state
