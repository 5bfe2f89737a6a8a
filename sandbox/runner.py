"""The parent side of a sandbox run: start it, feed it the job, read its records under a deadline, end it.

The parent never trusts the sandbox for time: every record must arrive within the per-test limit plus a
second, or the whole sandbox is killed (its process group, then its pid namespace dies with it). It waits for
the process to exit (a pidfd), not for its pipes to close, and caps what it reads.
"""

from __future__ import annotations

import ast
import logging
import marshal
import os
import selectors
import signal
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sandbox import _bootstrap
from sandbox.isolation import (CLEAN_ENV, Limits, SandboxUnavailable, Slot, bootstrap_copy, bwrap_argv, bwrap_copy,
                               find_bwrap, find_python, preexec, user_process_count)

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


class Sandbox:
    """Runs jobs in bubblewrap (default) or, only when asked, in the weaker rlimits-only mode.

    isolation: "bwrap" refuses to construct when namespaces are unavailable; "rlimits" runs without
        namespaces (no network or filesystem isolation: secrets in the environment of the machine are still
        hidden, files are not) and logs a warning.
    python: the interpreter for submissions (default /usr/bin/python3, else this one if readable).
    """

    def __init__(self, *, isolation: str = "bwrap", python: str | None = None, output_limit_mb: int = 8,
                 retries: int = 2):
        if isolation not in ("bwrap", "rlimits"):
            raise ValueError(f"isolation must be 'bwrap' or 'rlimits', got {isolation!r}")
        if not 4 <= output_limit_mb <= 16:
            raise ValueError(f"output_limit_mb must be within 4..16, got {output_limit_mb}")
        self.isolation, self.retries = isolation, retries
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

    def run_job(self, job: dict, *, timeout_s: float, limits: Limits = Limits(), secret: dict | None = None,
                on_record: Callable[[int, TestRecord], bool] | None = None) -> JobResult:
        """Run one job (see `sandbox._bootstrap`); retries infrastructure failures, then raises SandboxError.

        on_record(i, record) -> keep_going: called as each test finishes; False stops the run (the rest are
        not run), as LiveCodeBench stops at the first failing test.
        secret: harness-mode tests, sent only after the submission's process has started (never to it).
        """
        job = dict(job, timeout_s=timeout_s, output_limit=self.output_limit)
        for attempt in range(self.retries + 1):
            try:
                return self._once(job, secret, limits, on_record)
            except SandboxError as e:
                if attempt == self.retries:
                    raise
                log.warning("sandbox infrastructure failure (attempt %d): %s", attempt + 1, e)
        raise AssertionError("unreachable")

    def _once(self, job: dict, secret: dict | None, limits: Limits, on_record) -> JobResult:
        slot = Slot(self._locks)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(self._argv(limits), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=CLEAN_ENV, start_new_session=True,
                                    cwd="/" if self.bwrap else self.bootstrap.parent,
                                    preexec_fn=preexec(limits, slot.uid, self._nproc_base))
        except OSError as e:
            slot.release()
            raise SandboxError(f"could not start the sandbox: {e}") from e
        try:
            result, diag, ended_by_us = self._talk(proc, job, secret, on_record)
        finally:
            self._end(proc, slot)
        result.seconds = time.monotonic() - start
        expected = 1 if job["mode"] == "harness" and secret is None else len(
            (secret or job)["tests"])
        if not ended_by_us and proc.returncode != 0 and len(result.records) < expected:
            failed = [r for r in result.records if r.status != "ok"]
            if not (job.get("stop_on_fail") and failed):
                raise SandboxError(f"exit {proc.returncode}: {diag.decode(errors='replace')[-2000:]}")
        while len(result.records) < expected:
            result.records.append(TestRecord("not_run"))
        return result

    def _talk(self, proc: subprocess.Popen, job: dict, secret: dict | None, on_record):
        timeout_s = job["timeout_s"]
        payload = memoryview(_frame(job) + (_frame(secret) if secret is not None else b""))
        sel = selectors.DefaultSelector()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        pidfd = os.pidfd_open(proc.pid)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        sel.register(pidfd, selectors.EVENT_READ)
        records_buf, diag = bytearray(), bytearray()
        result = JobResult()
        deadline = time.monotonic() + STARTUP_S + timeout_s + SLACK_S
        ended_by_us, exited = False, False
        try:
            while not exited:
                left = deadline - time.monotonic()
                if left <= 0:
                    result.records.append(TestRecord("timeout", detail="killed by the parent's deadline"))
                    ended_by_us = True
                    break
                for key, _ in sel.select(left):
                    if key.fileobj is proc.stdin:
                        try:
                            payload = payload[os.write(proc.stdin.fileno(), payload[:1 << 16]):]
                        except BrokenPipeError:
                            payload = payload[:0]
                        if not payload:
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                    elif key.fileobj is pidfd:
                        exited = True
                    else:
                        buf = records_buf if key.fileobj is proc.stdout else diag
                        _read_available(key.fileobj.fileno(), buf, 4 * self.output_limit + (1 << 20))
                if exited:  # what it wrote before exiting is still in the pipes
                    _read_available(proc.stdout.fileno(), records_buf, 4 * self.output_limit + (1 << 20))
                    _read_available(proc.stderr.fileno(), diag, 1 << 16)
                for record in _parse_records(records_buf):
                    result.records.append(record)
                    deadline = time.monotonic() + timeout_s + SLACK_S
                    if on_record is not None and not on_record(len(result.records) - 1, record):
                        result.stopped = ended_by_us = True
                        exited = True
                        break
                del diag[: max(0, len(diag) - (1 << 16))]
        finally:
            sel.close()
            os.close(pidfd)
        return result, bytes(diag), ended_by_us

    def _end(self, proc: subprocess.Popen, slot: Slot) -> None:
        """Kill whatever is left of the run and reap it; in rlimits mode as root, every process of the slot uid."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if not stream.closed:
                stream.close()
        if self.bwrap is None and slot.uid is not None:
            _kill_uid(slot.uid)
        slot.release()


def decode_result(text: str):
    """The return value a call-mode test reported (ValueError when it is not a valid tagged literal)."""
    try:
        return _bootstrap.decode(ast.literal_eval(text))
    except (SyntaxError, MemoryError, RecursionError, TypeError, KeyError) as e:
        raise ValueError(f"unreadable return value: {e}") from e


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
