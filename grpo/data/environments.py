"""Environments: one notion of a task for training, rejection sampling and evaluation alike.

An environment is where problems come from and how they are judged. `env.records(split, seed=, limit=)` gives
records {"id", "problem", "answer", "solution", "verifier", "row"}: the question, the gold the verifier reads, a
worked solution when there is one (the SFT / cold-start target), what judges it (verifiers/route.py: math, code,
reasoning_gym or a module:function) and the row with all its fields (what reward plug-ins receive). `env.prompt(r)`
is the question with the environment's instruction (the R1 instruction for a math answer, nothing for code), the
text `python -m evals.run` gives a model before its chat template; training renders `problem` with the run's
`prompt.template` (grpo/data/prompts.py).

    environments.of_data(config.data, config.task)     # what a run trains on (its heldout split: what it validates on)
    environments.heldout(config)                       # what a run validates on (the heldout section, else data's)
    environments.suite("math500", data_dir)            # an evaluation suite (grpo/data/suites.py)
    environments.gym("spell_backward", {...})          # a reasoning-gym generator (grpo/data/gym.py)
    environments.named("rg:chain_sum", ...)            # what `python -m evals.run --suite` accepts

Every stage of a run (sft, grpo, generate, filter, distill, eval) reads its problems through `of_data` / `heldout`;
`python -m evals.run` reads every suite, a reasoning-gym dataset or a user's factory through `named`, and judges all
of them with the same `verifiers.route.judge`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grpo.config import DataConfig, TaskConfig
from grpo.data import gym as gym_data
from grpo.data.jsonl import DataError
from grpo.data.prompts import R1_INSTRUCTION
from grpo.data.records import load_records
from grpo.data.suites import SUITES, load_rows

SPLITS = ("train", "heldout")
GYM_PREFIX = "rg:"  # `--suite rg:<name>`: a reasoning-gym generator's held-out problems


@dataclass(frozen=True)
class Environment:
    """A task (see the module docstring). `load(split, seed)` -> (records, report {"rows", "kept", "left_out",
    "held_out"}); the rest is what evaluation reports about it."""

    name: str
    load: Callable[[str, int], tuple[list[dict], dict]]
    instruction: str = R1_INSTRUCTION
    breakdown: tuple[str, ...] = ()
    n: int = 1  # samples per problem under the R1 protocol
    note: str = ""

    def records(self, split: str = "heldout", *, seed: int = 0, limit: int = 0) -> list[dict]:
        """One split's records (the first `limit`); a DataError naming the environment for one that is not a record
        (a user's factory may build anything): each needs `id`, `problem` and `answer`; `verifier` defaults to
        math, `solution` to None and `row` to {}."""
        if split not in SPLITS:
            raise ValueError(f"environment {self.name}: split must be one of {SPLITS}, got {split!r}")
        loaded = self.load(split, seed)
        records = loaded[0] if isinstance(loaded, tuple) else None
        if not isinstance(records, list):
            raise DataError(f"environment {self.name}: load(split, seed) must return (records, report), got "
                            f"{type(loaded).__name__}")
        for number, r in enumerate(records):
            missing = [k for k in ("id", "problem", "answer") if not isinstance(r, dict) or k not in r]
            if missing:
                raise DataError(f"environment {self.name}: {split} record {number + 1} has no {missing[0]!r} "
                                "(a record: id, problem, answer, and optionally solution, verifier, row)")
            r.setdefault("verifier", "math")
            r.setdefault("solution", None)
            r.setdefault("row", {})
        return records[:limit] if limit else records

    def prompt(self, record: dict) -> str:
        """The question and the instruction: what a model is given before its chat template."""
        return f"{record['problem']}\n{self.instruction}" if self.instruction else record["problem"]


def of_data(cfg: DataConfig, task: TaskConfig, *, section: str = "data", hold_out: bool = True) -> Environment:
    """A run's data section as an environment (built-in task, file, hub or reasoning-gym source). `hold_out`: a file
    or hub source with no heldout section of its own keeps `heldout_percent` of its rows out of training."""
    name = cfg.name or cfg.path or cfg.source

    def load(split: str, seed: int):
        records, report = load_records(cfg, task, split=split, seed=seed, section=section, hold_out=hold_out)
        for number, r in enumerate(records):
            r.setdefault("id", f"{split}/{number}")
        return records, report

    return Environment(name, load, instruction="" if cfg.verifier == "code" else R1_INSTRUCTION)


def heldout(config) -> Environment:
    """What a run validates on: its heldout section when set, else the held-out split of its data."""
    if config.heldout.source:
        return of_data(config.heldout, config.task, section="heldout", hold_out=False)
    return of_data(config.data, config.task, hold_out=True)


def suite(name: str, directory: Path, *, date_from: str = "", date_to: str = "", difficulty: str = "") -> Environment:
    """An evaluation suite (grpo/data/suites.py): one split of problems, the same whichever split is asked for."""
    s = SUITES[name]

    def load(split: str, seed: int):
        rows = load_rows(s, directory, date_from=date_from, date_to=date_to, difficulty=difficulty)
        records = [{"id": s.id_of(r, r["_index"]), "problem": s.question_of(r),
                    "answer": str(s.gold_of(r)) if s.kind == "math" else {k: v for k, v in r.items() if k != "_index"},
                    "solution": None, "verifier": s.kind, "row": r} for r in rows]
        return records, {"rows": len(rows), "kept": len(rows), "left_out": 0, "held_out": 0}

    return Environment(name, load, instruction=s.instruction, breakdown=s.breakdown, n=s.n, note=s.note)


def gym(name: str, options: dict | None = None, *, size: int = 200, percent: int = 10) -> Environment:
    """A reasoning-gym generator: `size` problems per split, disjoint by a hash of the question (grpo/data/gym.py);
    with a run's options and `percent` (its data.heldout_percent), the held-out problems the run validates on. The
    errors name evals.run's flags."""
    options = dict(options or {})
    gym_data.dataset(name, options, seed=0, size=1, name_key=f"--suite {GYM_PREFIX}{name}",
                     options_key="--options")  # an unknown name or option: refused here, before any model loads

    def load(split: str, seed: int):
        records = gym_data.draw(name, options, split=split, size=size, seed=seed, percent=percent,
                                key="--heldout-percent", options_key="--options", size_key="--size")
        return records, {"rows": len(records), "kept": len(records), "left_out": 0, "held_out": 0}

    note = f"reasoning-gym {name}" + (f" with options {json.dumps(options)}" if options else "")
    return Environment(f"{GYM_PREFIX}{name}", load, breakdown=(), note=note)


def named(text: str, *, data_dir: Path, options: dict | None = None, size: int = 200, percent: int = 10,
          **filters) -> Environment:
    """What `python -m evals.run --suite` names: a built-in suite, `rg:<generator>` (with `options`, `size`
    held-out problems, `percent` held out), or a user's factory `module:function` returning an Environment."""
    if text in SUITES:
        return suite(text, data_dir, **filters)
    if text.startswith(GYM_PREFIX):
        return gym(text[len(GYM_PREFIX):], options, size=size, percent=percent)
    if ":" in text:
        from verifiers.plugins import PluginError, load

        try:
            made = load(text)()
        except PluginError as e:
            raise DataError(f"--suite {text}: {e}") from None
        except Exception as e:  # noqa: BLE001 -- whatever the user's factory raises is theirs to read, in one line
            raise DataError(f"--suite {text}: the factory raised {type(e).__name__}: {e}") from None
        if not isinstance(made, Environment):
            raise DataError(f"--suite {text}: the factory returned a {type(made).__name__}, not an "
                            "grpo.data.environments.Environment")
        return made
    raise DataError(f"unknown suite {text!r} (known: {', '.join(SUITES)}, {GYM_PREFIX}<reasoning-gym dataset>, or "
                    "module:function returning an Environment)")


def from_rows(name: str, rows: Callable[[str, int], list[dict]], cfg: DataConfig | None = None) -> Environment:
    """A user's environment from a function (split, seed) -> rows, each read by `cfg`'s field names (prompt_field,
    answer_field, solution_field, verifier; by default `problem`, `answer`, and `solution` when a row has one) as a
    file's rows are: what a `module:function` factory may return. A row's own `id` is kept."""
    from grpo.data.records import read_row

    cfg = cfg or DataConfig(source="jsonl")

    def load(split: str, seed: int):
        records = []
        for number, row in enumerate(rows(split, seed)):
            record = read_row(row, cfg, f"environment {name}, {split} row {number + 1}", "data")
            if not cfg.solution_field and row.get("solution"):
                record["solution"] = str(row["solution"])
            record["id"] = str(row.get("id", f"{split}/{number}"))
            records.append(record)
        return records, {"rows": len(records), "kept": len(records), "left_out": 0, "held_out": 0}

    return Environment(name, load, instruction="" if cfg.verifier == "code" else R1_INSTRUCTION)
