"""JSON-lines files, read with errors that name the file and line: the leaf every reader of data and run files uses."""

from __future__ import annotations

import json
from pathlib import Path


class DataError(ValueError):
    """A dataset problem; the message names the file (or dataset) and the line (or row)."""


def read_jsonl(path: Path, *, torn_tail_ok: bool = False):
    """(where, row) for each non-blank line of a jsonl file; `where` is "file:line", and a line that is not
    JSON stops with a DataError naming it. `torn_tail_ok`: a last line that is not JSON (a write cut short by a
    crash, in a file the run writes itself) ends the rows instead."""
    with Path(path).open(encoding="utf-8-sig") as f:  # a byte-order mark (Windows editors) is not data
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as e:
                if torn_tail_ok and not f.read().strip():
                    return
                raise DataError(f"{path}:{number}: not valid JSON ({e.msg})") from e
