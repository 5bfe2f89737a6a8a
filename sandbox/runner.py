"""The parent side of a sandbox run: start it, feed it the job, read its records under a deadline, end it.

The parent never trusts the sandbox for time: every record must arrive within the per-test limit plus a
second, or the whole sandbox is killed (its process group, then its pid namespace dies with it). It waits for
the process to exit (a pidfd), not for its pipes to close, and caps what it reads.
"""

from __future__ import annotations

import ast
import atexit
import logging
import marshal
import os
import select
import selectors
import signal
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sandbox import _bootstrap
from sandbox.isolation import (
    CLEAN_ENV,
    Limits,
    SandboxUnavailable,
    Slot,
    bootstrap_copy,
    bwrap_argv,
    bwrap_copy,
    find_bwrap,
    find_python,
    preexec,
    user_process_count,
)

log = logging.getLogger(__name__)
STARTUP_S = 5.0  # a cold start on a loaded machine, on top of the first test's limit
SLACK_S = 1.0  # how late past its limit a record may arrive before the sandbox is killed
_HEADER = struct.Struct("<III")
_LEN = struct.Struct("<I")


class SandboxError(RuntimeError):
    """The sandbox itself failed (bwrap could not start, the bootstrap died): not the submission's fault."""


@dataclass
class TestRecord:
    """What one test did inside the sandbox. status: ok, error, timeout, memory, output_limit, killed,
    compile_error, or not_run (the run stopped before it)."""

    status: str
    returncode: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    seconds: float = 0.0
    result: str | None = None  # call mode: the tagged return value as literal text (see `decode_result`)
    detail: str = ""


@dataclass
class JobResult:
    records: list[TestRecord] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # the caller asked to stop after a record


def _frame(obj: dict) -> bytes:
    data = marshal.dumps(obj)
    return _LEN.pack(len(data)) + data


class _Warm:
    """One live sandbox (bwrap + bootstrap) on its own slot, serving jobs one at a time."""

    def __init__(self, argv: list[str], cwd: str, limits: Limits, slot: Slot, nproc_base: int):
        self.slot, self.limits, self.jobs = slot, limits, 0
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=CLEAN_ENV, start_new_session=True, cwd=cwd,
                                         preexec_fn=preexec(limits, slot.uid, nproc_base))
        except OSError as e:
            slot.release()
            raise SandboxError(f"could not start the sandbox: {e}") from e
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            os.set_blocking(stream.fileno(), False)
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.records, self.diag = bytearray(), bytearray()

    def kill(self, rlimits_mode: bool) -> None:
        """End everything of this sandbox and reap it (as root in rlimits mode: every process of its uid)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        os.close(self.pidfd)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not stream.closed:
                stream.close()
        if rlimits_mode and self.slot.uid is not None:
            _kill_uid(self.slot.uid)
        self.slot.release()


class Sandbox:
    """Runs jobs in bubblewrap (default) or, only when asked, in the weaker rlimits-only mode.

    A sandbox process stays warm between jobs (its interpreter, prelude and namespaces are reused; every test
    still runs in a fresh forked child, and between jobs every leftover process is killed and the scratch
    tmpfs emptied). One that timed out, misbehaved or served `max_jobs` jobs is killed and replaced.
    isolation: "bwrap" refuses to construct when namespaces are unavailable; "rlimits" runs without
        namespaces (no network or filesystem isolation: secrets in the environment of the machine are still
        hidden, files are not) and logs a warning.
    python: the interpreter for submissions (default /usr/bin/python3, else this one if readable).
    """

    def __init__(self, *, isolation: str = "bwrap", python: str | None = None, output_limit_mb: int = 8,
                 retries: int = 2, max_jobs: int = 200):
        if isolation not in ("bwrap", "rlimits"):
            raise ValueError(f"isolation must be 'bwrap' or 'rlimits', got {isolation!r}")
        if not 4 <= output_limit_mb <= 16:
            raise ValueError(f"output_limit_mb must be within 4..16, got {output_limit_mb}")
        self.isolation, self.retries, self.max_jobs = isolation, retries, max_jobs
        self.output_limit = output_limit_mb << 20
        self.python = find_python(python)
        self._nproc_base = 0 if os.geteuid() == 0 else user_process_count()
        self.bootstrap = bootstrap_copy()
        if isolation == "bwrap":
            self.bwrap: Path | None = bwrap_copy(find_bwrap())
        else:
            log.warning("sandbox in rlimits mode: no namespaces, so no network or filesystem isolation")
            self.bwrap = None
        self._locks = self.bootstrap.parent / "slots"
        self._idle: list[_Warm] = []
        self._lock = threading.Lock()
        atexit.register(self.close)
        self._probe()

    def _probe(self) -> None:
        try:
            result = self.run_job({"mode": "script", "code": "print(1)", "tests": [{"stdin": ""}]}, timeout_s=10)
        except SandboxError as e:
            raise SandboxUnavailable(f"the {self.isolation} sandbox cannot start here: {e}") from e
        record = result.records[0]
        if (record.status, record.stdout) != ("ok", b"1\n"):
            raise SandboxUnavailable(f"the sandbox probe failed: {record}")

    def _argv(self, limits: Limits) -> list[str]:
        if self.bwrap is not None:
            return bwrap_argv(self.bwrap, self.python, self.bootstrap, limits)
        return [str(self.python), "-I", "-S", "-B", str(self.bootstrap)]

    def _checkout(self, limits: Limits) -> _Warm:
        with self._lock:
            for i, warm in enumerate(self._idle):
                if warm.limits == limits and warm.proc.poll() is None:
                    return self._idle.pop(i)
        return _Warm(self._argv(limits), "/" if self.bwrap else str(self.bootstrap.parent), limits,
                     Slot(self._locks), self._nproc_base)

    def _checkin(self, warm: _Warm, reusable: bool) -> None:
        warm.jobs += 1
        if reusable and warm.jobs < self.max_jobs:
            with self._lock:
                self._idle.append(warm)
        else:
            warm.kill(self.bwrap is None)

    def close(self) -> None:
        """Kill every warm sandbox (also run at interpreter exit)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for warm in idle:
            warm.kill(self.bwrap is None)

    def run_job(self, job: dict, *, timeout_s: float, limits: Limits = Limits(), secret: dict | None = None,
                on_record: Callable[[int, TestRecord], bool] | None = None) -> JobResult:
        """Run one job (see `sandbox._bootstrap`); retries infrastructure failures, then raises SandboxError.

        on_record(i, record) -> keep_going: called as each test finishes; False stops the run (the rest are
        not run), as LiveCodeBench stops at the first failing test.
        secret: harness-mode tests, sent only after the submission's process has started (never to it).
        """
        job = dict(job, timeout_s=timeout_s, output_limit=self.output_limit, memory_bytes=limits.memory_mb << 20)
        for attempt in range(self.retries + 1):
            try:
                return self._once(job, secret, limits, on_record)
            except SandboxError as e:
                if attempt == self.retries:
                    raise
                log.warning("sandbox infrastructure failure (attempt %d): %s", attempt + 1, e)
        raise AssertionError("unreachable")

    def _once(self, job: dict, secret: dict | None, limits: Limits, on_record) -> JobResult:
        start = time.monotonic()
        warm = self._checkout(limits)
        reusable = False
        try:
            result, reusable = self._talk(warm, job, secret, on_record)
        finally:
            self._checkin(warm, reusable)
        result.seconds = time.monotonic() - start
        expected = len((secret or job)["tests"])
        while len(result.records) < expected:
            result.records.append(TestRecord("not_run"))
        return result

    def _talk(self, warm: _Warm, job: dict, secret: dict | None, on_record) -> tuple[JobResult, bool]:
        """Send the job, read its records until "done"; (result, whether the sandbox can serve again)."""
        proc, timeout_s = warm.proc, job["timeout_s"]
        pending = memoryview(_frame(job) + (_frame(secret) if secret is not None else b""))
        result = JobResult()
        deadline = time.monotonic() + STARTUP_S + timeout_s + SLACK_S
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        sel.register(warm.pidfd, selectors.EVENT_READ)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    record = TestRecord("timeout", detail="killed by the parent's deadline")
                    result.records.append(record)
                    if on_record is not None and not result.stopped:  # the caller's verdict is a timeout too
                        on_record(len(result.records) - 1, record)
                    return result, False
                events = sel.select(left)
                exited = any(key.fileobj is warm.pidfd for key, _ in events)
                for key, _ in events:
                    if key.fileobj is proc.stdin:
                        try:
                            pending = pending[os.write(proc.stdin.fileno(), pending[:1 << 16]):]
                        except (BrokenPipeError, BlockingIOError):
                            pending = pending[:0] if proc.poll() is not None else pending
                        if not pending:
                            sel.unregister(proc.stdin)
                if exited or any(key.fileobj is proc.stdout for key, _ in events):
                    _read_available(proc.stdout.fileno(), warm.records, 4 * self.output_limit + (1 << 20))
                if exited or any(key.fileobj is proc.stderr for key, _ in events):
                    _read_available(proc.stderr.fileno(), warm.diag, 1 << 16)
                    del warm.diag[: max(0, len(warm.diag) - (1 << 16))]
                for record in _parse_records(warm.records):
                    if record.status == "done":
                        return result, bool(record.detail == "clean")
                    if result.stopped:
                        continue  # a record that crossed our abort
                    result.records.append(record)
                    deadline = time.monotonic() + timeout_s + SLACK_S
                    if on_record is not None and not on_record(len(result.records) - 1, record):
                        result.stopped = True
                        _write_frame(proc.stdin.fileno(), {"abort": True})
                        deadline = time.monotonic() + 2 * SLACK_S  # the bootstrap ends the job at once
                if exited:
                    raise SandboxError(f"the sandbox exited ({proc.poll()}): "
                                       f"{bytes(warm.diag).decode(errors='replace')[-2000:]}")
        finally:
            sel.close()


def _write_frame(fd: int, obj: dict) -> None:
    data = memoryview(_frame(obj))
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
        except BrokenPipeError:
            return


def decode_result(text: str):
    """The return value a call-mode test reported (ValueError when it is not a valid tagged literal)."""
    try:
        return _bootstrap.decode(ast.literal_eval(text))
    except Exception as e:  # noqa: BLE001 - the text comes from the program: any malformed literal is unreadable
        raise ValueError(f"unreadable return value: {type(e).__name__}: {e}") from e


def _read_available(fd: int, buf: bytearray, cap: int) -> None:
    while len(buf) < cap:
        try:
            chunk = os.read(fd, 1 << 16)
        except (BlockingIOError, OSError):
            return
        if not chunk:
            return
        buf.extend(chunk)


def _parse_records(buf: bytearray):
    while len(buf) >= _HEADER.size:
        n_meta, n_out, n_err = _HEADER.unpack_from(buf)
        total = _HEADER.size + n_meta + n_out + n_err
        if len(buf) < total:
            return
        at = _HEADER.size
        try:
            meta = ast.literal_eval(bytes(buf[at : at + n_meta]).decode())
        except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as e:
            raise SandboxError(f"unreadable record from the sandbox: {e}") from e
        out = bytes(buf[at + n_meta : at + n_meta + n_out])
        err = bytes(buf[at + n_meta + n_out : total])
        del buf[:total]
        if meta.get("status") == "done":
            yield TestRecord("done", detail="clean" if meta.get("clean") else "dirty")
            continue
        yield TestRecord(meta["status"], meta.get("returncode"), out, err, meta.get("seconds", 0.0),
                         meta.get("result"), meta.get("detail", ""))


def _kill_uid(uid: int) -> None:
    """Kill every process owned by `uid` (the rlimits mode has no pid namespace to do it for us)."""
    for _ in range(3):
        found = False
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        os.kill(int(name), signal.SIGKILL)
                        found = True
                except OSError:
                    pass
        if not found:
            return


__all__ = ["Sandbox", "SandboxError", "SandboxUnavailable", "TestRecord", "JobResult", "Limits", "_bootstrap"]
