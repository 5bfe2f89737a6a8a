"""Problem records from the built-in tasks, jsonl, parquet, the hub or reasoning-gym (grpo/data/gym.py).

A record is {"problem", "answer", "solution", "verifier", "row"} (solution may be None). Field names come from
`DataConfig`; the answer is the field as is (`plain`), the number after "####" (`gsm8k`), or the last \\boxed{} of
the field (`boxed`, MATH solutions); for a code row (`verifier: code`) it is the row itself, a problem with its tests.
`verifier` says what judges it (math, code, or a module:function), `row` is the dataset row with all its fields
(what reward plug-ins receive). A malformed row is an error naming the file and line; nothing is dropped silently:
rows left out (by `max_rows`, or by the SFT length limit later) are counted and reported. Without a heldout section,
a file or hub source keeps `heldout_percent` of its rows out of training, chosen by a hash of the question.
"""

from __future__ import annotations

from pathlib import Path

from grpo.config import BUILT_IN, DataConfig, TaskConfig
from grpo.data import gym, tasks
from grpo.data.holdout import held_out
from grpo.data.jsonl import DataError, read_jsonl
from grpo.hub import NotFound, snapshot
from verifiers.code import ProblemError, load_problem
from verifiers.extract import boxed_contents


def gsm8k_answer(text: str) -> str:
    """GSM8K's gold: the number after the last "####", thousands separators removed (the text must have one)."""
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def _text(row: dict, field: str, where: str) -> str:
    """A text field's value: a string or a number (an answer of 42); anything else (null, a list, an object) is not
    text, and str() of it ("None") would be trained on as if it were."""
    value = row[field]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: {field!r} must be text or a number, got {type(value).__name__} {value!r:.60}")
    return str(value)


def _answer(row: dict, cfg: DataConfig, where: str, verifier: str = "math") -> str:
    if cfg.answer_field not in row:
        raise DataError(f"{where}: no field {cfg.answer_field!r} (data.answer_field); fields: {sorted(row)}")
    if ":" in verifier and cfg.answer_format == "plain":  # a user's verifier reads the whole row, as it likes
        return str(row[cfg.answer_field])
    text = _text(row, cfg.answer_field, where)
    if cfg.answer_format == "gsm8k":
        if "####" not in text:
            raise DataError(f"{where}: {cfg.answer_field!r} has no '####' (data.answer_format: gsm8k)")
        text = gsm8k_answer(text)
    elif cfg.answer_format == "boxed":
        boxes = [b for b in boxed_contents(text) if b]
        if not boxes:
            raise DataError(f"{where}: {cfg.answer_field!r} has no \\boxed{{}} (data.answer_format: boxed)")
        text = boxes[-1]
    if not text.strip():
        raise DataError(f"{where}: {cfg.answer_field!r} gives an empty answer (data.answer_format: {cfg.answer_format})")
    return text.strip()


def read_row(row, cfg: DataConfig, where: str, section: str) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be an object, got {type(row).__name__}")
    if cfg.prompt_field not in row or not _text(row, cfg.prompt_field, where).strip():
        raise DataError(f"{where}: no field {cfg.prompt_field!r} ({section}.prompt_field); fields: {sorted(row)}")
    solution = None
    if cfg.solution_field:
        if cfg.solution_field not in row:
            raise DataError(f"{where}: no field {cfg.solution_field!r} ({section}.solution_field)")
        solution = _text(row, cfg.solution_field, where)
    verifier = str(row.get("verifier") or cfg.verifier)
    if verifier == "code":  # the row is the problem: its tests must load (a missing field is named here, not later)
        answer = {k: v for k, v in row.items() if k != "verifier"}
        try:
            load_problem(answer)
        except ProblemError as e:
            raise DataError(f"{where}: not a code problem the sandbox can grade ({section}.verifier code): {e}") from e
    else:
        answer = _answer(row, cfg, where, verifier)
    return {"problem": str(row[cfg.prompt_field]), "answer": answer, "solution": solution, "verifier": verifier,
            "row": dict(row)}


def _rows(cfg: DataConfig, section: str):
    """(where, row) pairs from the configured source (`section`: data or heldout, for messages)."""
    if cfg.source == "jsonl":
        path = Path(cfg.path)
        if not path.exists():
            raise DataError(f"{path}: no such file ({section}.path)")
        yield from read_jsonl(path)
        return
    import datasets  # heavy (pyarrow): only the parquet and hub sources load it

    try:
        if cfg.source == "parquet":
            if not Path(cfg.path).exists():
                raise DataError(f"{cfg.path}: no such file ({section}.path)")
            table = datasets.load_dataset("parquet", data_files=cfg.path, split="train")
        else:
            table = hub_table(cfg, f"{section}.path")
    except (DataError, NotFound):
        raise
    except Exception as e:
        raise DataError(f"{cfg.path}: could not load the {cfg.source} dataset ({section}.path): {e}") from e
    for number, row in enumerate(table, start=1):
        yield f"{cfg.path} row {number}", row


def hub_table(cfg: DataConfig, key: str, *, data_files: str = ""):
    """A hub dataset's split through `datasets` (online, or from its own cache of an earlier load); when the hub
    cannot be reached, from the repository's files in the Hugging Face cache (as `hf download --repo-type dataset`
    leaves them), or a NotFound naming the case (`key`: what the message names). `data_files`: a pattern of the
    repository's files to read as the split (for a repository whose layout `datasets` cannot read alone)."""
    import datasets  # heavy (pyarrow): only the hub source loads it

    files = {cfg.split: data_files} if data_files else None
    try:
        return datasets.load_dataset(cfg.path, cfg.subset or None, split=cfg.split, revision=cfg.revision or None,
                                     data_files=files)
    except Exception as e:  # noqa: BLE001 -- only a hub that cannot be reached falls back; the rest is re-raised
        if not _unreachable(e):
            raise
    directory = snapshot(cfg.path, cfg.revision, repo_type="dataset", key=key)
    return datasets.load_dataset(str(directory), cfg.subset or None, split=cfg.split, data_files=files)


def _unreachable(error: BaseException | None) -> bool:
    """Did `datasets` fail because the hub could not be reached (offline mode, no network)?"""
    while error is not None:
        if isinstance(error, ConnectionError) or type(error).__name__ in ("OfflineModeIsEnabled",
                                                                            "LocalEntryNotFoundError"):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_records(cfg: DataConfig, task: TaskConfig, *, split: str, seed: int, section: str = "data",
                 hold_out: bool = False) -> tuple[list[dict], dict]:
    """Records and a report {"rows", "kept", "left_out", "held_out"} for one split of the configured data (the config's
    `section`: data or heldout). `hold_out` (a file or hub source with no heldout section of its own): the train split
    leaves out, and the heldout split is, the rows `held_out` picks."""
    if cfg.source in BUILT_IN:
        n = task.train_size if split == "train" else task.heldout_size
        try:
            records = (tasks.programs(n, split=split, seed=seed) if cfg.source == "programs" else
                       tasks.products(n, split=split, seed=seed, digits=task.digits,
                                      tool_solutions=task.tool_solutions) if cfg.source == "products" else
                       tasks.arithmetic(n, split=split, seed=seed, digits=task.digits, ops=task.ops,
                                        operators=task.operators, solution_slips=task.solution_slips,
                                        sign_errors=task.sign_errors,
                                        answer_sign_drops=task.answer_sign_drops))
        except ValueError as e:  # more problems asked for than the task has
            raise DataError(f"task.{'train' if split == 'train' else 'heldout'}_size ({n}): {e}") from e
        for r in records:
            r.update(verifier="code" if isinstance(r["answer"], dict) else "math", row=dict(r))
        return records, {"rows": len(records), "kept": len(records), "left_out": 0, "held_out": 0}
    if cfg.source == "reasoning_gym":
        n = task.train_size if split == "train" else task.heldout_size
        records = gym.draw(cfg.name, cfg.options, split=split, size=n, seed=seed, percent=cfg.heldout_percent,
                           key=section, answer_char_drops=task.answer_char_drops)
        return records, {"rows": len(records), "kept": len(records), "left_out": 0, "held_out": 0}
    records, rows, held = [], 0, 0
    for where, row in _rows(cfg, section):
        rows += 1
        if hold_out:
            question = str(row.get(cfg.prompt_field, "")) if isinstance(row, dict) else ""
            if held_out(question, cfg.heldout_percent) != (split == "heldout"):
                held += split != "heldout"
                continue
        if cfg.max_rows and len(records) >= cfg.max_rows:
            continue
        records.append(read_row(row, cfg, where, section))
    if not records:
        raise DataError(f"{cfg.path}: no rows ({cfg.source} data, {split} split): nothing to train or evaluate on")
    return records, {"rows": rows, "kept": len(records), "left_out": rows - held - len(records), "held_out": held}
