"""User functions as rewards and verifiers, run like the built-in verifiers: in worker processes, each call under a
hard wall-clock deadline and a memory cap (verifiers/pool.py), so a function that hangs, raises, crashes its process
or returns nonsense costs its completion a zero and a reason, never the run.

    fn(completion: str, row: dict) -> float | int | bool | None

`completion` is the text the verifier reads (behind the think prefix the prompt opened); `row` the dataset row with
all its fields. A number (bool: 1.0 / 0.0) is the value; None is "no opinion" (0, reason `no_opinion`); NaN marks an
infrastructure failure (the completion's group is dropped, never learned from). Any other outcome is 0 with a reason:
`reward_timeout` (past the deadline; the worker is killed and replaced), `reward_memory`, `reward_crash` (the worker
died), `reward_error` (it raised, or returned something that is not a number: the reason's detail says what).

A worker imports the function's module before it takes its first call, so a slow import (torch, transformers) is not
charged to a completion's deadline.

`check(target)` imports and inspects a target before any training: an import path that does not import, names no
callable, or whose callable cannot take (completion, row) is a PluginError naming it.
"""

from __future__ import annotations

import atexit
import importlib
import inspect
import math
import os
import threading
from dataclasses import dataclass

from verifiers.pool import CRASH, ERROR, MEMORY, OK, TIMEOUT, WorkerPool

MEMORY_MB = 2048  # per worker (address space), as the math verifier's

_loaded: dict = {}  # in a worker: target -> function


class PluginError(ValueError):
    """A reward or verifier function that cannot be used; the message names it and why."""


@dataclass(frozen=True)
class Value:
    """One call's outcome: `value` (0.0 unless the call succeeded) and `reason` ("ok", or why not), `detail` for
    the log (the exception, the type returned)."""

    value: float
    reason: str = "ok"
    detail: str = ""


def load(target: str):
    """The callable that `module:function` names (`module:Class.method` too); PluginError naming what is wrong."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"{target!r}: expected module:function (e.g. my_rewards:length_penalty)")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - whatever the module raises on import is the user's error to read
        raise PluginError(f"{target!r}: module {module_name!r} does not import: {type(e).__name__}: {e}") from None
    function = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise PluginError(f"{target!r}: module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise PluginError(f"{target!r}: {attribute!r} is a {type(function).__name__}, not a function")
    return function


def check(target: str) -> None:
    """Refuse a target that does not import, is not callable, or cannot be called as fn(completion, row)."""
    function = load(target)
    try:
        inspect.signature(function).bind("completion", {})
    except TypeError as e:
        raise PluginError(f"{target!r}: it must take (completion: str, row: dict): {e}") from None
    except ValueError:  # builtins without a signature: accepted, a wrong call is a reward_error per completion
        pass


def call_item(item: tuple[str, str, dict]) -> Value:
    """Worker side: `target(completion, row)` as a Value (the function imported once per worker; its return value
    read here, so whatever it returns, even something that does not pickle, becomes a number or a reason)."""
    target, completion, row = item
    if target not in _loaded:
        _loaded[target] = load(target)
    return as_value(_loaded[target](completion, row))


def as_value(raw) -> Value:
    """A function's return value -> Value (see the module docstring)."""
    if raw is None:
        return Value(0.0, "no_opinion")
    if isinstance(raw, bool):
        return Value(float(raw))
    try:
        if isinstance(raw, (int, float)):
            number = float(raw)
        else:  # numpy and torch scalars
            number = float(raw.item())
    except OverflowError:
        return Value(0.0, "reward_error", f"returned {_short(raw)}, too large for a float")
    except Exception:  # noqa: BLE001 - anything else is not a number
        return Value(0.0, "reward_error", f"returned a {type(raw).__name__}, not a number")
    return Value(number) if not math.isinf(number) else Value(0.0, "reward_error", f"returned {_short(raw)}")


def _short(raw) -> str:
    text = repr(raw) if not isinstance(raw, int) or raw.bit_length() < 200 else f"an int of {len(str(raw))} digits"
    return text[:80]


_STATUS = {TIMEOUT: "reward_timeout", MEMORY: "reward_memory", CRASH: "reward_crash", ERROR: "reward_error"}
_pool: WorkerPool | None = None
_lock = threading.Lock()


def run(target: str, completions: list[str], rows: list[dict], *, timeout_s: float, workers: int) -> list[Value]:
    """`target(completion, row)` for each pair, in the shared plug-in pool, each call under `timeout_s`."""
    global _pool
    if len(completions) != len(rows):
        raise ValueError(f"{len(completions)} completions but {len(rows)} rows")
    with _lock:
        module = target.partition(":")[0]
        if (_pool is None or (_pool.workers, _pool.pid) != (workers, os.getpid())
                or module not in _pool.preload):  # a new module: workers that import it before their first call
            preload = tuple(_pool.preload) if _pool is not None and _pool.pid == os.getpid() else ()
            if _pool is not None and _pool.pid == os.getpid():
                _pool.close()
            _pool = WorkerPool("verifiers.plugins:call_item", workers=workers, memory_mb=MEMORY_MB,
                               preload=tuple(dict.fromkeys((*preload, module))))
        outcomes = _pool.map([(target, c, r) for c, r in zip(completions, rows)], timeout_s)
    return [o.value if o.status == OK else Value(0.0, _STATUS[o.status], str(o.value or "")) for o in outcomes]


@atexit.register
def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None and _pool.pid == os.getpid():
            _pool.close()
        _pool = None
