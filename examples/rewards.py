"""A reward plug-in, as a user writes one: partial credit for a near miss on the built-in arithmetic task.

    reward:
      functions:
        - {fn: "examples.rewards:closeness", weight: 0.5}

The trainer calls it once per completion, in a worker process with the run's deadline (reward.timeout_s), as
fn(completion, row): `completion` is the text the verifier reads (think block included), `row` the dataset row with
all its fields. It returns a number, or None for "no opinion" (counted as 0). README "Bring your own reward".
"""

import re

BOXED_INTEGER = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")


def closeness(completion: str, row: dict) -> float | None:
    """1 / (1 + |answer - gold|) for the last boxed integer after the think block: 1 when right, 0.5 one off, ...;
    None when the completion boxes no integer there."""
    found = BOXED_INTEGER.findall(completion.rsplit("</think>", 1)[-1])
    if not found:
        return None
    return 1.0 / (1.0 + abs(int(found[-1]) - int(row["answer"])))
