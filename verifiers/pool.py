"""A process pool with a hard wall-clock deadline per item: the only safe way to time out a CAS.

Why not ``signal.alarm`` (math-verify, lm-eval): it works only in the main thread, cannot interrupt C-level
big-integer work, and is process-global. Why not ``multiprocessing.Pool``: it cannot kill one stuck task, and
its spawn/forkserver start re-imports the caller's ``__main__`` (a script without a main guard breaks), while
its fork start is unsafe in a parent that holds threads (torch, vLLM).

Here each worker is a plain ``python -m verifiers.pool MODULE:FUNCTION`` subprocess that speaks
length-prefixed pickles over its stdin/stdout. The parent hands one item at a time to an idle worker, waits on
every busy pipe at once, and when an item passes its deadline it SIGKILLs that worker, reaps it and starts a
replacement in the background. A worker that dies (segfault, out-of-memory kill) is replaced the same way.
Each worker caps its own address space (RLIMIT_AS), so a memory blow-up raises MemoryError inside it instead
of taking the machine down. An item's deadline starts when a ready worker receives it, never before.
"""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, BinaryIO

TIMEOUT, MEMORY, CRASH, ERROR, OK = "timeout", "memory", "crash", "error", "ok"
_HEADER = struct.Struct("<I")
_READY = "ready"


def _exit_code(proc: subprocess.Popen, grace_s: float = 2.0) -> int | None:
    """The exit status of a worker whose pipe just closed: the pipe can close a moment before the process is
    reaped, so wait up to `grace_s` for it (None if it is still alive by then)."""
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        return None


@dataclass
class Outcome:
    """What happened to one item: status OK with a value, or TIMEOUT / MEMORY / CRASH / ERROR."""

    status: str
    value: Any = None
    seconds: float = 0.0


def _send(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(stream.fileno(), data):]


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(stream.fileno(), left)
        if not chunk:
            raise EOFError("the other side closed its pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(stream: BinaryIO) -> Any:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


class _Worker:
    def __init__(self, target: str, memory_mb: int | None, preload: tuple[str, ...] = ()):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        args = [sys.executable, "-m", "verifiers.pool", target, str(memory_mb or 0), *preload]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     bufsize=0, start_new_session=True)  # Ctrl-C is the parent's to handle
        self.ready = False
        self.index: int | None = None
        self.deadline = 0.0
        self.started = 0.0

    def kill(self) -> None:
        """SIGKILL the worker and whatever it started (its own process group: a subprocess a function left
        running dies with it)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # the group is gone already
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class WorkerPool:
    """`map(items, timeout_s)` runs `function(item)` in `workers` processes, each item under a wall-clock limit.

    target: "package.module:function", importable by the worker; items and results must pickle (a result that does
    not is an ERROR for its item).
    memory_mb: address-space cap per worker (None for no cap).
    preload: modules each worker imports before it says it is ready (an import that fails is left to the calls),
    so no item's deadline pays for them.
    One `map` at a time: callers that share a pool across threads hold a lock around it.
    """

    def __init__(self, target: str, *, workers: int, memory_mb: int | None = None, preload: tuple[str, ...] = ()):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.target, self.workers, self.memory_mb, self.preload = target, workers, memory_mb, tuple(preload)
        self.pid = os.getpid()  # a forked child must not use its parent's workers
        self._workers = [_Worker(target, memory_mb, self.preload) for _ in range(workers)]
        self.replaced = 0  # workers killed or lost and started again, over the pool's life

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self.target, self.memory_mb, self.preload)
        self.replaced += 1

    def _dispatch(self, pending: deque, items: list, timeout_s: float) -> None:
        for worker in self._workers:
            if worker.ready and worker.index is None and pending:
                worker.index = pending.popleft()
                worker.started = time.monotonic()
                worker.deadline = worker.started + timeout_s
                try:
                    _send(worker.proc.stdin, items[worker.index])
                except (BrokenPipeError, OSError):
                    pending.appendleft(worker.index)
                    self._replace(worker)

    def map(self, items: list, timeout_s: float) -> list[Outcome]:
        """One Outcome per item, in order; each item gets `timeout_s` seconds from the moment a worker has it."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        results: list[Outcome | None] = [None] * len(items)
        pending = deque(range(len(items)))
        while pending or any(w.index is not None for w in self._workers):
            self._dispatch(pending, items, timeout_s)
            busy = [w for w in self._workers if w.index is not None]
            deadlines = [w.deadline for w in busy]
            ready = wait([w.proc.stdout for w in self._workers],
                         timeout=max(0.0, min(deadlines) - time.monotonic()) if deadlines else None)
            now = time.monotonic()
            for worker in list(self._workers):
                outcome = None
                if worker.proc.stdout in ready:
                    try:
                        message = _recv(worker.proc.stdout)
                    except (EOFError, OSError, pickle.UnpicklingError):
                        message = (CRASH, f"worker exited with {_exit_code(worker.proc)}")
                    if message == _READY:
                        worker.ready = True
                        continue
                    if worker.index is not None:
                        outcome = Outcome(message[0], message[1], now - worker.started)
                    if message[0] in (CRASH, MEMORY):
                        if worker.index is None:
                            raise RuntimeError(f"verifier worker {self.target} failed to start: {message[1]}")
                        self._replace_after(worker, results, outcome)
                        continue
                elif worker.index is not None and now >= worker.deadline:
                    outcome = Outcome(TIMEOUT, None, now - worker.started)
                    self._replace_after(worker, results, outcome)
                    continue
                if outcome is not None:
                    results[worker.index] = outcome
                    worker.index = None
        return results  # type: ignore[return-value]

    def _replace_after(self, worker: _Worker, results: list, outcome: Outcome) -> None:
        results[worker.index] = outcome
        worker.index = None
        self._replace(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.kill()
        self._workers = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(target: str, memory_mb: int, preload: list[str]) -> None:
    """Worker side: import the target (and `preload`), say ready, then answer one item at a time until stdin
    closes."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    inp = os.fdopen(0, "rb")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    for extra in preload:
        try:
            importlib.import_module(extra)
        except Exception:  # noqa: BLE001 - the calls that need it will raise it, each with its item
            pass
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _send(out, _READY)
    while True:
        try:
            item = _recv(inp)
        except EOFError:
            return
        try:
            reply = (OK, function(item))
        except MemoryError:
            reply = (MEMORY, None)
        except Exception as e:  # a bug on one item must not stop the batch
            reply = (ERROR, f"{type(e).__name__}: {e}"[:300])
        try:
            pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - a result that does not pickle: an error for its item
            reply = (ERROR, f"the result ({type(reply[1]).__name__}) does not pickle: {e}"[:300])
        _send(out, reply)
        if reply[0] == MEMORY:
            return  # the heap may be in a bad way: the parent starts a fresh worker


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
