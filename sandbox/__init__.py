"""A local sandbox for model-written programs: bubblewrap namespaces, rlimits and a parent-enforced deadline.

    run(code, *, stdin="", timeout_s, memory_mb=1024) -> RunResult
    Sandbox(...).run_job(job, ...)   # many tests of one submission in one sandbox (what verifiers.code uses)
    run_batch(codes, ...)            # many programs at once, one thread per concurrent sandbox

Threat model. Covered: a program that tries to reach the network (own empty network namespace: no
loopback peers, no DNS); read host files (only /usr, the interpreter's prefix and the loader cache are bound,
read-only; nothing from /root, /home or /etc beyond that); read the caller's secrets (an empty environment,
for bwrap itself too, so /proc/1/environ is empty); write outside its scratch (a size-capped tmpfs is the only
writable place, /dev is read-only); exhaust memory (address-space cap per process), processes or threads
(RLIMIT_NPROC on a private uid per concurrent slot when the caller is root), disk (tmpfs size, file size),
file descriptors, CPU (wall-clock deadline enforced by the parent, CPU rlimit as backstop); flood output
(capped per stream, then killed); outlive the run (pid namespace: when the bootstrap exits everything
inside dies; the parent kills the process group and waits for exit, not pipe EOF); kill the parent or
`kill -1` (confined to the pid namespace); ignore SIGTERM or sleep forever (SIGKILL at the deadline); raise
its rlimits (hard limits); create nested user namespaces (disabled); tamper with the grader (expected
outputs never enter the sandbox; harness-style asserts run in a process the submission cannot reach, forked for
the job, so a later submission of a reused sandbox cannot find them in memory; only the problem's entry points
answer from the submission, never a name the asserts take from builtins or the problem's trusted prompt; a
malformed return value or an unparsable printed token is a failed test, never a grader error).
Not covered: kernel exploits (no seccomp filter is installed; a kernel bug reachable from an unprivileged
user namespace breaks the boundary), side channels, and the total memory of several processes (the cap is
per process; no cgroup is required, so 64 processes could each take the per-process cap). As an ordinary
(non-root) caller the sandbox runs as that caller's uid, so RLIMIT_NPROC counts the caller's own processes.
The "rlimits" isolation mode, used only when asked for, has no namespaces: no network or filesystem isolation.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sandbox.isolation import Limits, SandboxUnavailable
from sandbox.runner import Sandbox, SandboxError, TestRecord


@dataclass(frozen=True)
class RunResult:
    """One program run. status: ok, error, timeout, memory, output_limit, killed."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    elapsed_s: float


_default: dict[str, Sandbox] = {}
_default_lock = threading.Lock()


def default_sandbox(isolation: str = "bwrap") -> Sandbox:
    """The process-wide sandbox of that isolation mode, probed once."""
    with _default_lock:
        if isolation not in _default:
            _default[isolation] = Sandbox(isolation=isolation)
        return _default[isolation]


def _as_run_result(record: TestRecord, seconds: float) -> RunResult:
    status = "error" if record.status in ("compile_error", "not_run") else record.status
    return RunResult(status, record.returncode, record.stdout.decode("utf-8", errors="replace"),
                     record.stderr.decode("utf-8", errors="replace"), seconds)


def run(code: str, *, stdin: str = "", timeout_s: float, memory_mb: int = 1024, isolation: str = "bwrap",
        sandbox: Sandbox | None = None) -> RunResult:
    """Run `code` as a Python program with `stdin`; a verdict always comes back within timeout_s + 2 s."""
    if not isinstance(code, str):
        raise TypeError(f"code must be str, got {type(code).__name__}")
    box = sandbox or default_sandbox(isolation)
    result = box.run_job({"mode": "script", "code": code, "tests": [{"stdin": stdin}]}, timeout_s=timeout_s,
                         limits=Limits(memory_mb=memory_mb))
    return _as_run_result(result.records[0], result.seconds)


def run_batch(codes: list[str], *, stdins: list[str] | None = None, timeout_s: float, memory_mb: int = 1024,
              workers: int = 2, sandbox: Sandbox | None = None) -> list[RunResult]:
    """Run many programs, `workers` sandboxes at a time (each in its own slot)."""
    stdins = stdins if stdins is not None else [""] * len(codes)
    box = sandbox or default_sandbox()
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda cs: run(cs[0], stdin=cs[1], timeout_s=timeout_s, memory_mb=memory_mb,
                                            sandbox=box), zip(codes, stdins)))


__all__ = ["run", "run_batch", "RunResult", "Sandbox", "SandboxError", "SandboxUnavailable", "Limits",
           "default_sandbox"]
