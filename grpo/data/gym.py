"""reasoning-gym (the `reasoning-gym` package: procedural generators with their own scorers) as a data source.

    data: {source: reasoning_gym, name: spell_backward, options: {min_word_len: 3, max_word_len: 6}}

`draw(name, options, split=..., size=..., seed=...)` gives records (grpo/data/records.py) whose row is the
generator's entry {"question", "answer", "metadata"} and whose verifier is `reasoning_gym` (verifiers/gym.py: the
generator's own `score_answer`). Train and held-out draws are disjoint by construction: a question is held out when a
hash of its text says so (grpo/data/holdout.py, the rule file sources use), the training draw skips those and the
held-out draw keeps only those. The training draw follows the run's seed; the held-out draw is one fixed stream, so
runs at every seed, and `python -m evals.run --suite rg:<name>`, score the same held-out problems. The worked
solution (the cold-start target) is the answer alone: a think block, then the boxed answer; `answer_char_drops`
gives a share of the training solutions a transcription error (the boxed answer without its last character) that
imitation learns and the generator's scorer sees (configs/tiny_gym.yaml).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import random

from grpo.data.holdout import held_out
from grpo.data.jsonl import DataError
from grpo.data.prompts import THINK_PREFIX

HELDOUT_SEED = 2_147_483_629  # the held-out stream's seed, whatever the run's
DRAWS_PER_ITEM = 50  # give up after this many draws per problem asked for (a generator with too few questions)


def dataset(name: str, options: dict, *, seed: int, size: int, key: str = "data", name_key: str = "",
            options_key: str = ""):
    """The reasoning-gym generator `name` with `options`; a DataError naming the key (`name_key`, `options_key`;
    default `key`.name, `key`.options) for an unknown name or option."""
    name_key, options_key = name_key or f"{key}.name", options_key or f"{key}.options"
    try:
        import reasoning_gym
        from reasoning_gym.factory import DATASETS
    except ImportError as e:
        raise DataError(f"{name_key}: reasoning-gym problems need the reasoning-gym package (pip install "
                        f"reasoning-gym): {e}") from None
    if name not in DATASETS:
        near = difflib.get_close_matches(name, list(DATASETS), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else f" ({len(DATASETS)} known, e.g. spell_backward)"
        raise DataError(f"{name_key}: {name!r} is not a reasoning-gym dataset{hint}")
    fields = [f.name for f in dataclasses.fields(DATASETS[name][1]) if f.name not in ("seed", "size")]
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise DataError(f"{options_key}: reasoning-gym {name} has no option {unknown[0]!r} "
                        f"(its options: {', '.join(fields)})")
    try:
        return reasoning_gym.create_dataset(name, seed=seed, size=size, **options)
    except (AssertionError, ValueError, TypeError) as e:
        raise DataError(f"{options_key} {json.dumps(options)}: reasoning-gym {name} refuses them: "
                        f"{e or type(e).__name__}") from None


def solution(answer: str) -> str:
    """The cold-start target: the answer alone, boxed after an empty think block."""
    return f"{THINK_PREFIX}</think>\n\\boxed{{{answer}}}"


def draw(name: str, options: dict, *, split: str, size: int, seed: int, percent: int, key: str = "data",
         options_key: str = "", size_key: str = "", answer_char_drops: float = 0.0) -> list[dict]:
    """`size` records of one split (train: duplicates allowed, as a generator repeats itself; heldout: distinct).
    The row is the generator's entry itself (its metadata may hold tuples its scorer relies on).
    `answer_char_drops` (train only): the share of worked solutions whose boxed answer is copied without its last
    character (drawn from `seed`); the gold answer stays right."""
    heldout = split == "heldout"
    options_key = options_key or f"{key}.options"
    size_key = size_key or f"task.{'heldout' if heldout else 'train'}_size"
    if not 0 < percent < 100:
        raise DataError(f"{key}.heldout_percent must be between 1 and 99 for reasoning_gym data, got {percent}")
    limit = size * DRAWS_PER_ITEM
    source = dataset(name, options, seed=HELDOUT_SEED if heldout else seed, size=limit, key=key,
                     options_key=options_key)
    records: list[dict] = []
    seen: set[str] = set()
    slips = random.Random(f"answer_char_drops/{seed}")
    drops = answer_char_drops if not heldout else 0.0
    for index in range(limit):
        entry = source[index]
        question = entry["question"]
        if held_out(question, percent) != heldout or (heldout and question in seen):
            continue
        seen.add(question)
        answer = str(entry["answer"])
        written = answer[:-1] if drops and len(answer) > 1 and slips.random() < drops else answer
        records.append({"id": f"{name}/{split}/{index}", "problem": question, "answer": answer,
                        "solution": solution(written), "verifier": "reasoning_gym", "row": entry})
        if len(records) == size:
            return records
    what = "distinct held-out" if heldout else "training"
    raise DataError(f"reasoning-gym {name} with {options_key} {json.dumps(options)}: only {len(records)} {what} "
                    f"problems in {limit} draws, {size} asked for: widen the options or ask for fewer ({size_key})")
