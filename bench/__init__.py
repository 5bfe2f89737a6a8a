"""Benchmarks: run each as `python -m bench.<name>` from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys


class SideFailed(RuntimeError):
    """One side of a benchmark exited non-zero; `last_error` is the last line of its stderr naming an error."""

    def __init__(self, label: str, stderr: str):
        lines = [line for line in stderr.splitlines() if "Error" in line or "error" in line]
        tail = stderr.strip().splitlines()
        self.last_error = (lines[-1] if lines else tail[-1] if tail else "no output")[-300:]
        super().__init__(f"{label} failed:\n{stderr[-3000:]}")


def run_side(module: str, argv: list[str], label: str) -> dict:
    """`python -m <module> <argv>` in its own process (its own peak RSS and thread state): the JSON object on
    its last stdout line. Raises SideFailed with the tail of its stderr."""
    out = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        raise SideFailed(label, out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])
