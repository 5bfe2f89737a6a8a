"""Evaluation suites: each is data + prompt + verifier in a few lines (`python -m evals.run` scores them; the
filter stage decontaminates training problems against them).

A suite names its public hub dataset (id, configuration, split) and a local jsonl file, how a row gives its id,
question and gold, the instruction the R1 prompt adds, the verifier kind (`math`: `verifiers.math` against the gold
answer; `code`: `verifiers.code` runs the row's tests in the sandbox) and the fields to break results down by. Ids
are the dataset's own (MATH-500 `unique_id`, HumanEval and MBPP `task_id`, LiveCodeBench `question_id`, AIME `id`),
else the row index (GSM8K). grpo/data/environments.py makes each suite an environment.

Where rows come from (`load_rows`): the local file in `--data-dir` / `GRPO_EVAL_DATA` / `../shared/data` next to the
repository when it is there (tests, and this machine, which has no hub), else the hub dataset through `datasets`
(cached after the first load; offline, the Hugging Face cache's files), else one error naming the dataset, the
split and the override.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grpo.config import DataConfig
from grpo.data.jsonl import DataError, read_jsonl
from grpo.data.prompts import R1_INSTRUCTION as R1_MATH
from grpo.data.records import gsm8k_answer, hub_table
from grpo.hub import NotFound

CODE_FENCE = "Write the solution in Python inside one ```python code block."


def _gsm8k_gold(row: dict) -> str:
    return gsm8k_answer(row["answer"])


def _lcb_prompt(row: dict) -> str:
    starter = row.get("starter_code") or ""
    io = ("Use the starter code below and return the answer from the method." if starter.strip() else
          "Read the input from standard input and write the answer to standard output.")
    text = f"{row['question_content']}\n\n{io}\n{CODE_FENCE}"
    return text + (f"\n\n```python\n{starter}\n```" if starter.strip() else "")


@dataclass(frozen=True)
class Hub:
    """Where a suite lives on the Hugging Face hub: dataset id, configuration, split (and data files, when the
    repository's own layout does not say)."""

    path: str
    subset: str = ""
    split: str = "test"
    data_files: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    file: str
    kind: str  # "math" or "code"
    id_of: Callable[[dict, int], str]
    question_of: Callable[[dict], str]  # the problem as the model reads it, before the instruction
    gold_of: Callable[[dict], object]  # math: the gold answer; code: the problem dict itself
    hub: Hub | None = None
    instruction: str = ""  # what the R1 prompt adds after the question (math: where the answer goes)
    breakdown: tuple[str, ...] = ()
    n: int = 1  # samples per problem under the R1 protocol (open-r1's choices)
    note: str = ""  # what the report must say about this suite (e.g. public tests only)


SUITES = {s.name: s for s in [
    Suite("math500", "math500.jsonl", "math", lambda r, i: r["unique_id"], lambda r: r["problem"],
          lambda r: r["answer"], Hub("HuggingFaceH4/MATH-500"), R1_MATH, breakdown=("subject", "level"), n=4),
    Suite("aime24", "aime24.jsonl", "math", lambda r, i: str(r.get("id", i)), lambda r: r["problem"],
          lambda r: str(r["answer"]), Hub("HuggingFaceH4/aime_2024", split="train"), R1_MATH, n=64),
    Suite("aime25", "aime25.jsonl", "math", lambda r, i: str(r.get("id", i)), lambda r: r["problem"],
          lambda r: str(r["answer"]), Hub("yentinglin/aime_2025", split="train"), R1_MATH, n=64),
    Suite("gsm8k", "gsm8k_test.jsonl", "math", lambda r, i: str(r.get("id", i)), lambda r: r["question"],
          _gsm8k_gold, Hub("openai/gsm8k", "main"), R1_MATH, n=1),
    Suite("humaneval", "humaneval.jsonl", "code", lambda r, i: r["task_id"],
          lambda r: f"Complete this Python function.\n\n```python\n{r['prompt']}\n```\n{CODE_FENCE}",
          lambda r: r, Hub("openai/openai_humaneval"), n=1),
    Suite("mbpp", "mbpp.jsonl", "code", lambda r, i: str(r["task_id"]),
          lambda r: f"{r['text']}\nYour code should pass these tests:\n" + "\n".join(r["test_list"]) +
          f"\n{CODE_FENCE}", lambda r: r, Hub("google-research-datasets/mbpp", "full"), n=1,
          note="the local file holds all 974 MBPP problems; the hub's test split holds the standard 500 (11-510)"),
    Suite("livecodebench", "livecodebench_subset.jsonl", "code", lambda r, i: r["question_id"], _lcb_prompt,
          lambda r: r, Hub("livecodebench/code_generation_lite", data_files="test*.jsonl"),
          breakdown=("difficulty", "platform"), n=16,
          note="the shared subset carries public tests only: a pass means the public tests pass; the hub's rows "
               "carry the hidden tests too"),
]}


def data_dir(given: str | None = None) -> Path:
    if given:
        return Path(given)
    if os.environ.get("GRPO_EVAL_DATA"):
        return Path(os.environ["GRPO_EVAL_DATA"])
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _hub_rows(suite: Suite, path: Path) -> list[dict]:
    """The suite's rows from the hub (or the `datasets` / Hugging Face cache); NotFound naming the way out."""
    if suite.hub is None:
        raise NotFound(f"suite {suite.name}: no data file {path} and no hub dataset to load it from: put the file "
                       "there (--data-dir DIR or GRPO_EVAL_DATA)")
    hub = suite.hub
    where = f"{hub.path}" + (f" ({hub.subset})" if hub.subset else "") + f", split {hub.split}"
    try:
        table = hub_table(DataConfig(source="hub", path=hub.path, subset=hub.subset, split=hub.split),
                          f"suite {suite.name}", data_files=hub.data_files)
    except NotFound as e:
        raise NotFound(f"suite {suite.name}: no local file {path}, and the hub dataset {where} could not be loaded "
                       f"({e}); put {suite.file} in a directory and pass --data-dir DIR (or GRPO_EVAL_DATA)"
                       ) from None
    except Exception as e:  # noqa: BLE001 -- whatever datasets raises, the message names the dataset and the override
        raise NotFound(f"suite {suite.name}: no local file {path}, and the hub dataset {where} could not be loaded "
                       f"({type(e).__name__}: {e}); put {suite.file} in a directory and pass --data-dir DIR (or "
                       "GRPO_EVAL_DATA)") from None
    return [dict(row) for row in table]


def load_rows(suite: Suite, directory: Path, *, limit: int = 0, date_from: str = "", date_to: str = "",
              difficulty: str = "") -> list[dict]:
    """The suite's rows, in file (or hub) order; LiveCodeBench filters by contest date window and difficulty."""
    path = directory / suite.file
    rows = []
    for _, row in (read_jsonl(path) if path.exists() else enumerate(_hub_rows(suite, path))):
        if not isinstance(row, dict):
            raise DataError(f"suite {suite.name}: row {len(rows) + 1} is not an object")
        row["_index"] = len(rows)
        rows.append(row)
    if date_from or date_to:
        rows = [r for r in rows if (not date_from or r.get("contest_date", "") >= date_from)
                and (not date_to or r.get("contest_date", "") < date_to)]
    if difficulty:
        rows = [r for r in rows if r.get("difficulty") in difficulty.split(",")]
    return rows[:limit] if limit else rows
