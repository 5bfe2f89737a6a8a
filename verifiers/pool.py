"""A process pool with a hard wall-clock deadline per item: the only safe way to time out a CAS.

Why not ``signal.alarm`` (math-verify, lm-eval): it works only in the main thread, cannot interrupt C-level
big-integer work, and is process-global. Why not ``multiprocessing.Pool``: it cannot kill one stuck task.

Here each worker is a process with its own pipe. The parent hands one item at a time to an idle worker,
waits on every busy pipe and process at once, and when an item passes its deadline it SIGKILLs that worker,
reaps it and starts a replacement. A worker that dies (segfault, out-of-memory kill) is replaced the same
way. Each worker caps its own address space (RLIMIT_AS) so a memory blow-up raises MemoryError inside it
instead of taking the machine down.

Workers come from the ``forkserver`` start method: safe in a parent that holds threads (torch, vLLM), and a
replacement after a kill forks from a server that already imported the heavy modules, so it is ready in
milliseconds instead of the seconds a fresh interpreter needs to import sympy.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable

TIMEOUT = "timeout"
MEMORY = "memory"
CRASH = "crash"
ERROR = "error"
OK = "ok"


@dataclass
class Outcome:
    """What happened to one item: status OK with a value, or TIMEOUT / MEMORY / CRASH / ERROR."""

    status: str
    value: Any = None
    seconds: float = 0.0


def _worker_main(conn, fn: Callable, memory_mb: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            reply = (OK, fn(message))
        except MemoryError:
            reply = (MEMORY, None)
        except Exception as e:  # a bug in one item must not stop the batch
            reply = (ERROR, f"{type(e).__name__}: {e}"[:300])
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
        if reply[0] == MEMORY:
            return  # the heap may be in a bad way: let the parent start a fresh worker


class _Worker:
    def __init__(self, ctx, fn: Callable, memory_mb: int | None):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, fn, memory_mb), daemon=True)
        self.process.start()
        child.close()
        self.index: int | None = None
        self.started = 0.0

    def kill(self) -> None:
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()
        self.conn.close()


class WorkerPool:
    """`map(items)` runs `fn(item)` in `workers` processes, each item under `timeout_s` of wall-clock time.

    `fn` must be a module-level function (it is pickled by reference). `preload` names modules the fork
    server imports once, so that workers (and replacements) start with them loaded.
    """

    def __init__(self, fn: Callable, *, workers: int, timeout_s: float, memory_mb: int | None = None,
                 preload: tuple[str, ...] = ()):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.fn, self.timeout_s, self.memory_mb = fn, timeout_s, memory_mb
        self._ctx = mp.get_context("forkserver")
        if preload:
            self._ctx.set_forkserver_preload(list(preload))
        self._workers = [_Worker(self._ctx, fn, memory_mb) for _ in range(workers)]
        self.replaced = 0  # workers killed or lost and started again, over the pool's life

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self._ctx, self.fn, self.memory_mb)
        self.replaced += 1

    def map(self, items: list) -> list[Outcome]:
        results: list[Outcome | None] = [None] * len(items)
        pending = deque(range(len(items)))
        busy: dict[_Worker, float] = {}  # worker -> deadline
        while pending or busy:
            for worker in self._workers:
                if worker not in busy and pending:
                    worker.index = pending.popleft()
                    worker.started = time.monotonic()
                    try:
                        worker.conn.send(items[worker.index])
                    except (BrokenPipeError, OSError):
                        pending.appendleft(worker.index)
                        self._replace(worker)
                        continue
                    busy[worker] = worker.started + self.timeout_s
            if not busy:
                continue
            now = time.monotonic()
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                         timeout=max(0.0, min(busy.values()) - now))
            now = time.monotonic()
            for worker in list(busy):
                if worker.conn in ready:
                    try:
                        status, value = worker.conn.recv()
                    except (EOFError, OSError):
                        status, value = CRASH, f"worker exited with {worker.process.exitcode}"
                elif worker.process.sentinel in ready:
                    status, value = CRASH, f"worker exited with {worker.process.exitcode}"
                elif now >= busy[worker]:
                    status, value = TIMEOUT, None
                else:
                    continue
                results[worker.index] = Outcome(status, value, now - worker.started)
                del busy[worker]
                if status != OK and status != ERROR:
                    self._replace(worker)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=1)
            worker.kill()
        self._workers = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
