"""Evaluation suites: each is data + prompt + verifier in a few lines (`python -m evals.run` scores them; the
filter stage decontaminates training problems against them).

A suite names its jsonl file (looked up in `--data-dir`, default `../shared/data` next to the repository, or
the `GRPO_EVAL_DATA` environment variable), how a row gives its id, prompt text and gold, the verifier kind
(`math`: `verifiers.math` against the gold answer; `code`: `verifiers.code` runs the row's tests in the
sandbox) and the fields to break results down by. Ids are the dataset's own (MATH-500 `unique_id`, HumanEval
and MBPP `task_id`, LiveCodeBench `question_id`, AIME `id`), else the line index (GSM8K).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grpo.data.jsonl import read_jsonl
from grpo.data.prompts import R1_INSTRUCTION as R1_MATH
from grpo.data.records import gsm8k_answer

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
class Suite:
    name: str
    file: str
    kind: str  # "math" or "code"
    id_of: Callable[[dict, int], str]
    prompt_of: Callable[[dict], str]
    gold_of: Callable[[dict], object]  # math: the gold answer; code: the problem dict itself
    breakdown: tuple[str, ...] = ()
    n: int = 1  # samples per problem under the R1 protocol (open-r1's choices)
    note: str = ""  # what the report must say about this suite (e.g. public tests only)
    filters: dict = field(default_factory=dict)


SUITES = {s.name: s for s in [
    Suite("math500", "math500.jsonl", "math", lambda r, i: r["unique_id"], lambda r: f"{r['problem']}\n{R1_MATH}",
          lambda r: r["answer"], breakdown=("subject", "level"), n=4),
    Suite("aime24", "aime24.jsonl", "math", lambda r, i: str(r.get("id", i)),
          lambda r: f"{r['problem']}\n{R1_MATH}", lambda r: str(r["answer"]), n=64),
    Suite("aime25", "aime25.jsonl", "math", lambda r, i: str(r.get("id", i)),
          lambda r: f"{r['problem']}\n{R1_MATH}", lambda r: str(r["answer"]), n=64),
    Suite("gsm8k", "gsm8k_test.jsonl", "math", lambda r, i: str(r.get("id", i)),
          lambda r: f"{r['question']}\n{R1_MATH}", _gsm8k_gold, n=1),
    Suite("humaneval", "humaneval.jsonl", "code", lambda r, i: r["task_id"],
          lambda r: f"Complete this Python function.\n\n```python\n{r['prompt']}\n```\n{CODE_FENCE}",
          lambda r: r, n=1),
    Suite("mbpp", "mbpp.jsonl", "code", lambda r, i: str(r["task_id"]),
          lambda r: f"{r['text']}\nYour code should pass these tests:\n" + "\n".join(r["test_list"]) +
          f"\n{CODE_FENCE}", lambda r: r, n=1),
    Suite("livecodebench", "livecodebench_subset.jsonl", "code", lambda r, i: r["question_id"], _lcb_prompt,
          lambda r: r, breakdown=("difficulty", "platform"), n=16,
          note="the shared subset carries public tests only: a pass means the public tests pass"),
]}


def data_dir(given: str | None = None) -> Path:
    if given:
        return Path(given)
    if os.environ.get("GRPO_EVAL_DATA"):
        return Path(os.environ["GRPO_EVAL_DATA"])
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def load_rows(suite: Suite, directory: Path, *, limit: int = 0, date_from: str = "", date_to: str = "",
              difficulty: str = "") -> list[dict]:
    """The suite's rows, in file order; LiveCodeBench filters by contest date window and difficulty."""
    path = directory / suite.file
    if not path.exists():
        raise FileNotFoundError(f"suite {suite.name}: no data file {path} (set --data-dir or GRPO_EVAL_DATA)")
    rows = []
    for _, row in read_jsonl(path):
        row["_index"] = len(rows)
        rows.append(row)
    if date_from or date_to:
        rows = [r for r in rows if (not date_from or r.get("contest_date", "") >= date_from)
                and (not date_to or r.get("contest_date", "") < date_to)]
    if difficulty:
        rows = [r for r in rows if r.get("difficulty") in difficulty.split(",")]
    return rows[:limit] if limit else rows
