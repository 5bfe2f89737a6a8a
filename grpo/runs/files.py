"""The run directory's files: JSONL lines appended as a stage goes, lines forgotten on resume, atomic rewrites."""

from __future__ import annotations

import json
import os
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
