"""The run directory's files: JSONL lines appended as a stage goes, lines forgotten on resume, atomic rewrites."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from grpo.data.jsonl import read_jsonl


def append_jsonl(path: Path, rows) -> None:
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def drop_after(path: Path, stage: str, step: int) -> None:
    """Remove lines of `stage` logged after `step` (what a crashed run wrote past its last checkpoint, a last
    line cut short by the kill included)."""
    if not path.exists():
        return
    rows = [row for _, row in read_jsonl(path, torn_tail_ok=True)]
    kept = [r for r in rows if not (r.get("stage") == stage and r.get("step", 0) > step)]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: readers see the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


RUN_FILES = ("summary.json", "metrics.jsonl", "samples.jsonl", "checkpoints", "final", "final.old", "report",
             "generate", "filter", "distill", "eval", "tensorboard", "trackers.json")
"""What a run writes into its directory and `run.overwrite` deletes, with the `.tmp` files a write cut short left
(final.old: a final model renamed aside by a replacement a stop cut short, grpo/runs/checkpoint.py).
Kept: config.yaml (rewritten), logs/ (appended to; the console has opened it before the run starts), wandb/ (W&B's
runs, offline ones perhaps not synced yet; a new run gets a new W&B run) and anything else."""


def earlier_run(run_dir: Path) -> list[str]:
    """What an earlier run wrote into `run_dir`: its results among RUN_FILES (a config.yaml alone, from a run refused
    before it started, does not count; nor do the trackers' files alone, from one stopped before its first line)."""
    return [name for name in RUN_FILES if name not in ("tensorboard", "trackers.json") and (run_dir / name).exists()]


def clear_run(run_dir: Path) -> list[str]:
    """Delete an earlier run's files in `run_dir` (RUN_FILES and top-level `*.tmp`); return their names."""
    gone = []
    for path in [*(run_dir / name for name in RUN_FILES), *sorted(run_dir.glob("*.tmp"))]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        gone.append(path.name)
    return gone
