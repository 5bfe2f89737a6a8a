"""Math answer verification: the reward that decides what a math reasoner learns.

    verify(completion, gold) -> VerifyResult
    verify_batch(completions, golds, *, timeout_s=5.0, workers=None) -> list[VerifyResult]

How one completion is judged (policy with examples: docs/math_policy.md):
1. find the final answer (`verifiers.extract`): after the last </think>, the last \\boxed{}, else an explicit
   answer phrase; none means reason ``no_answer``;
2. refuse inputs that would stall a CAS (`verifiers.guard`): reason ``refused``;
3. parse gold and answer into typed values (`verifiers.answer`) and compare them (`verifiers.equiv`);
4. hedging never pays: several different boxed answers, "a or b", or a candidate list against a single-valued
   gold are ``multiple_answers``.

Both entry points run the judgement in worker processes with a hard per-item wall-clock limit and an
address-space cap (`verifiers.pool`): a timeout is a result (reason ``timeout``, reward 0), never an
exception, and never a hang. `judge` is the same judgement in the calling process, without those guards,
for debugging and for the workers themselves. Results are deterministic.
"""

from __future__ import annotations

import atexit
import os
import re
import threading

from verifiers import VerifyResult
from verifiers.answer import Refused, Seq, Value, parse, split_top
from verifiers.equiv import equal
from verifiers.extract import boxed_contents, extract
from verifiers.pool import CRASH, ERROR, MEMORY, OK, TIMEOUT, WorkerPool

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 2048
_LONG_GOLD = 200  # characters: a gold longer than this is a solution text, not an answer
_MAX_DISTINCT_BOXES = 32  # more different boxed answers than any gold list has: a hedge, not worth parsing
_OR = re.compile(r"\\(?:text|textrm|mbox|mathrm)\{\s*or\s*\}")
_OR_BETWEEN_BRACKETS = re.compile(r"(?<=[)\]])\s*or\s*(?=[(\[])")


def _result(reason: str, extracted: str | None = None) -> VerifyResult:
    ok = reason == "correct"
    return VerifyResult(reward=1.0 if ok else 0.0, correct=ok, reason=reason, extracted=extracted)


def _same_answer(a: Value, b: Value) -> bool:
    return equal(a, b) or equal(b, a)


def _distinct(values: list[Value]) -> list[Value]:
    kept: list[Value] = []
    for v in values:
        if not any(_same_answer(k, v) for k in kept):
            kept.append(v)
    return kept


def _items(v: Value) -> tuple:
    return v.items if isinstance(v, Seq) and v.kind in ("list", "set") else (v,)


def _prediction(answers: list[str], gold: Value) -> Value | None:
    """One value for the completion's answer(s), or None when it hedges between different answers."""
    gold_is_list = isinstance(gold, Seq) and gold.kind in ("list", "set") and len(gold.items) > 1
    answers = list(dict.fromkeys(answers))  # the same string boxed twice is one answer
    if len(answers) > _MAX_DISTINCT_BOXES:
        return None
    distinct = _distinct([_value(answer) for answer in answers])
    if len(distinct) > 1:
        if not gold_is_list:
            return None
        return Seq(tuple(item for v in distinct for item in _items(v)), "list")
    pred = distinct[0]
    if not isinstance(gold, Seq) and isinstance(pred, Seq) and pred.kind in ("list", "set") and pred.items:
        if len(_distinct(list(pred.items))) > 1:
            return None  # a list of candidates for a single-valued gold
        pred = pred.items[0]
    return pred


def _value(answer: str) -> Value:
    """An answer's value; "a or b" (also `\\text{ or }`, `(11,7)or(7,11)`) is the list of its alternatives."""
    answer = _OR_BETWEEN_BRACKETS.sub(" or ", _OR.sub(" or ", answer))
    alternatives = [a for a in split_top(answer, " or ") if a]
    if len(alternatives) <= 1:
        return parse(answer)
    return Seq(tuple(item for a in alternatives for item in _items(parse(a))), "list")


def _gold_answer(gold: str) -> str:
    """The answer a gold holds: a short gold with boxes (`\\boxed{6 \\text{ and } 8}`, `\\boxed{1} and \\boxed{2}`) is
    its boxed answers, several joined as a list; a worked solution (a gold over 200 characters) with boxes is its
    last box; a long gold with no box (a solution text) is the answer its final phrase
    states ("Final Answer: The final answer is $28\\%$"), read as a completion's would be; any other gold is
    itself."""
    if "\\boxed" in gold or "\\fbox" in gold:
        boxes = [b for b in boxed_contents(gold) if b is not None]
        if len(gold) > _LONG_GOLD and boxes:  # a worked solution: intermediate results may be boxed too
            return boxes[-1]
        return ", ".join(dict.fromkeys(boxes)) if boxes else gold
    if len(gold) > _LONG_GOLD and (found := extract(gold)).answers and found.source == "phrase":
        return found.answers[-1]
    return gold


def judge(completion: str, gold: str, *, last_number_fallback: bool = False) -> VerifyResult:
    """The verdict on one completion, computed in this process (no deadline: use `verify` for that)."""
    if not gold.strip():
        return _result("bad_gold")
    gold = _gold_answer(gold)
    try:
        gold_value = _value(gold)  # a gold "-2 or -12" is the list of both
    except Refused:
        return _result("bad_gold")
    found = extract(completion, last_number_fallback=last_number_fallback)
    if not found.answers:
        return _result("no_answer")
    extracted = found.answers[-1]
    try:
        pred = _prediction(found.answers, gold_value)
    except Refused:
        return _result("refused", extracted)
    if pred is None:
        return _result("multiple_answers", extracted)
    return _result("correct" if equal(gold_value, pred) else "wrong", extracted)


def judge_item(item: tuple[str, str, bool]) -> VerifyResult:
    """`judge` on one (completion, gold, last_number_fallback) tuple: what each pool worker runs."""
    completion, gold, fallback = item
    return judge(completion, gold, last_number_fallback=fallback)


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def _shared_pool(workers: int, memory_mb: int) -> WorkerPool:
    """The process-wide pool, (re)started when the size or memory cap asked for changes."""
    global _pool
    if _pool is not None and (_pool.workers, _pool.memory_mb, _pool.pid) != (workers, memory_mb, os.getpid()):
        if _pool.pid == os.getpid():
            _pool.close()
        _pool = None
    if _pool is None:
        _pool = WorkerPool("verifiers.math:judge_item", workers=workers, memory_mb=memory_mb)
    return _pool


@atexit.register
def shutdown() -> None:
    """Stop the worker processes (also run at interpreter exit)."""
    global _pool
    with _pool_lock:
        if _pool is not None and _pool.pid == os.getpid():
            _pool.close()
        _pool = None


_FAILURES = {TIMEOUT: "timeout", MEMORY: "memory", CRASH: "error", ERROR: "error"}


def verify_batch(completions: list[str], golds: list[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 workers: int | None = None, memory_mb: int = DEFAULT_MEMORY_MB,
                 last_number_fallback: bool = False) -> list[VerifyResult]:
    """Judge `completions[i]` against `golds[i]` in parallel worker processes.

    timeout_s: hard wall-clock limit per item; an item over it is ``timeout`` (reward 0) and its worker is
        killed and replaced. Every item returns within timeout_s plus scheduling slack.
    workers: processes to use (default: every core this process may run on). The pool is kept between calls.
    memory_mb: address-space cap of each worker; an item over it is ``memory`` (reward 0).
    """
    if len(completions) != len(golds):
        raise ValueError(f"verify_batch got {len(completions)} completions but {len(golds)} golds")
    for name, seq in (("completions", completions), ("golds", golds)):
        for i, x in enumerate(seq):
            if not isinstance(x, str):
                raise TypeError(f"verify_batch: {name}[{i}] is {type(x).__name__}, expected str")
    if not completions:
        return []
    workers = workers or len(os.sched_getaffinity(0))
    items = [(c, g, last_number_fallback) for c, g in zip(completions, golds)]
    with _pool_lock:  # one batch at a time; callers may be threads
        outcomes = _shared_pool(workers, memory_mb).map(items, timeout_s)
    return [o.value if o.status == OK else _failed(o.status, c, last_number_fallback)
            for o, c in zip(outcomes, completions)]


def _failed(status: str, completion: str, last_number_fallback: bool) -> VerifyResult:
    """A verdict for an item whose worker timed out, ran out of memory or died (the answer is still shown)."""
    answers = extract(completion, last_number_fallback=last_number_fallback).answers
    return _result(_FAILURES[status], answers[-1] if answers else None)


def verify(completion: str, gold: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
           memory_mb: int = DEFAULT_MEMORY_MB, last_number_fallback: bool = False) -> VerifyResult:
    """Judge one completion against its gold answer, in a worker process under a hard deadline."""
    return verify_batch([completion], [gold], timeout_s=timeout_s, workers=1, memory_mb=memory_mb,
                        last_number_fallback=last_number_fallback)[0]
