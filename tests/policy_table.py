"""Read the policy tables of docs/math_policy.md and README.md: every row becomes test cases, so the doc cannot
drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY_FILES = (ROOT / "docs" / "math_policy.md", ROOT / "README.md")
_CODE = re.compile(r"`([^`]+)`")


def _as_completion(prediction: str) -> str:
    if "\\boxed" in prediction or "answer" in prediction:
        return prediction
    return f"The final result follows. $\\boxed{{{prediction}}}$"


def policy_cases(paths: tuple[Path, ...] = POLICY_FILES) -> list[tuple[str, str, bool, str]]:
    """(gold, completion, expected_correct, row text) for every prediction in every 4-column table row."""
    cases = []
    lines = [line for path in paths for line in path.read_text().splitlines()]
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[2] not in ("correct", "wrong"):
            continue
        gold = _CODE.findall(cells[0])[0]
        for prediction in _CODE.findall(cells[1]):
            cases.append((gold, _as_completion(prediction), cells[2] == "correct", line))
    return cases
