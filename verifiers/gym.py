"""reasoning-gym's own answer scorers as a verifier (`data.verifier: reasoning_gym`).

A row is a reasoning-gym entry, {"question", "answer", "metadata"} with `metadata.source_dataset` naming its
generator. The answer is read from the completion the way every verifier here reads it (after the last `</think>`,
inside the last `<answer>` when there is one): the last `\\boxed{}`, else the whole `<answer>` block. Several
different boxes are a hedge and score nothing. The generator's `score_answer(answer, entry)` gives the reward in
[0, 1], correct at 1; it runs in the plug-in pool (verifiers/plugins.py), so a scorer that hangs or crashes costs its
completion a zero and a reason, never the run.
"""

from __future__ import annotations

import functools

from verifiers.extract import answer_section, boxed_contents

SCORER = "verifiers.gym:score"  # what the plug-in pool runs, worker side


def final_answer(completion: str) -> tuple[str | None, str]:
    """(the answer, "ok") or (None, why not: no_answer, multiple_answers)."""
    section = answer_section(completion)
    boxes = boxed_contents(section)
    if boxes:
        if boxes[-1] is None:  # an unclosed last box: truncated
            return None, "no_answer"
        answers = {b.strip() for b in boxes if b is not None and b.strip()}
        if len(answers) > 1:
            return None, "multiple_answers"
        return (answers.pop(), "ok") if answers else (None, "no_answer")
    if "<answer>" in completion and section.strip():
        return section.strip(), "ok"
    return None, "no_answer"


@functools.lru_cache(maxsize=None)
def _scorer(name: str):
    """A generator's score_answer, made once per worker (building a generator can read a word list: 40 ms)."""
    from reasoning_gym.factory import get_score_answer_fn  # only in the workers that score reasoning-gym rows

    return get_score_answer_fn(name)


def score(answer: str, row: dict) -> float:
    """Worker side: the generator's score for an extracted answer against its entry."""
    return float(_scorer(row["metadata"]["source_dataset"])(answer, row))
