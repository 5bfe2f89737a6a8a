"""The trusted program that runs *inside* the sandbox (stdlib only; started as ``python3 -I -S``).

One file on purpose: it is the only file of ours the sandbox can see (bound read-only at /.sandbox).

It serves jobs one after another (a warm sandbox). It reads each job from stdin (a length-prefixed marshal
frame from the trusted parent), then for each test forks a child that runs the untrusted
code with fresh stdin/stdout/stderr, and reports each result to the outer runner as one record on its own
stdout. Expected outputs never come here: the outer runner compares. In "harness" mode (HumanEval/MBPP
tests that are code with asserts), the untrusted code runs in a separate server process that only answers
function calls with strictly typed values, while the asserts run here, out of its reach: it cannot exit
before them, patch their builtins, or forge their result. After each job a "done" record; every process
but this one is killed and the scratch tmpfs emptied before the next job.

Record: struct "<III" (meta, stdout, stderr lengths), then the meta as a Python literal, stdout, stderr.
Meta: {"i": test index, "status": ok|error|timeout|memory|output_limit|killed|compile_error, "returncode",
"seconds", "result": the tagged return value as literal text (call mode), "detail"}.
Formats: the job comes from the trusted parent as `marshal`; everything that leaves a process running
untrusted code is a Python literal (`repr`), read back with `ast.literal_eval`, which cannot run code.
No json import on the common path: start-up time is most of a sandbox's cost.
This file is imported by the outer runner too, for `encode` / `decode`; nothing runs at import.
"""

import fcntl
import marshal
import os
import resource
import select
import signal
import struct
import sys
import time

MEMORY_EXIT = 86  # the child's own MemoryError
COMPILE_EXIT = 85  # SyntaxError while compiling the submission
UNENCODABLE_EXIT = 87  # call mode: the return value is not a plain builtin value
_HEADER = struct.Struct("<III")
_LEN = struct.Struct("<I")
_MAX_DEPTH = 200

# LiveCodeBench's prelude: these names are visible to solutions in both modes
PRELUDE_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
                   "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")


# ---- strict value encoding (used on both sides) ----------------------------------------------------------

_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset)}


def encode(value, depth=0):
    """A JSON-able form of a builtin value. Subclasses of builtins are stored as the builtin (a Counter as
    its dict, an IntEnum as its int), so no custom `__eq__` survives the trip; other objects are refused."""
    if depth > _MAX_DEPTH:
        raise TypeError("value nested too deeply")
    if type(value) is float and value - value != 0:  # inf and nan have no literal form
        return {"F": repr(value)}
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return encode(float.__float__(value), depth)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, complex):
        z = complex.__complex__(value)
        return {"c": [encode(z.real, depth + 1), encode(z.imag, depth + 1)]}
    if isinstance(value, list):
        return [encode(v, depth + 1) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"t": [encode(v, depth + 1) for v in tuple.__iter__(value)]}
    if isinstance(value, (set, frozenset)):
        tag = "f" if isinstance(value, frozenset) else "s"
        return {tag: [encode(v, depth + 1) for v in (frozenset if tag == "f" else set).__iter__(value)]}
    if isinstance(value, dict):
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if isinstance(value, bytes):
        return {"b": bytes(value).decode("latin-1")}
    if isinstance(value, type) and _TYPES.get(value.__name__) is value:
        return {"y": value.__name__}
    raise TypeError(f"unsupported value of type {type(value).__name__}")


def decode(data):
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        (tag, body), = data.items()
        if tag == "t":
            return tuple(decode(v) for v in body)
        if tag == "s":
            return {decode(v) for v in body}
        if tag == "f":
            return frozenset(decode(v) for v in body)
        if tag == "d":
            return {decode(k): decode(v) for k, v in body}
        if tag == "b":
            return body.encode("latin-1")
        if tag == "c":
            return complex(decode(body[0]), decode(body[1]))
        if tag == "F":
            return float(body)
        if tag == "y":
            return _TYPES[body]
        raise ValueError(f"unknown tag {tag!r}")
    return data


# ---- framing ----------------------------------------------------------------------------------------------

def _read_exact(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_job(fd):
    """A marshal frame from the trusted parent."""
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size))
    return marshal.loads(_read_exact(fd, size))


def read_literal(fd):
    """A literal frame from a process that may run untrusted code: parsed, never executed."""
    import ast
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size))
    return ast.literal_eval(_read_exact(fd, size).decode())


def write_literal(fd, obj):
    data = repr(obj).encode()
    _write_all(fd, _LEN.pack(len(data)) + data)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_record(fd, meta, out=b"", err=b""):
    body = repr(meta).encode()
    _write_all(fd, _HEADER.pack(len(body), len(out), len(err)) + body + out + err)


# ---- the child side: runs untrusted code ------------------------------------------------------------------

def _prelude_globals(job):
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    if job.get("prelude"):
        import importlib
        for name in PRELUDE_MODULES:
            module = importlib.import_module(name)
            g.update({k: getattr(module, k) for k in getattr(module, "__all__", dir(module)) if not k.startswith("_")})
            g[name] = module
    return g


def _keep_fds(fds):
    """Move `fds` to 3, 4, ... and close every other descriptor above 2 (the channel above all)."""
    top = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, top // 2) for fd in fds]
    for target, fd in enumerate(high, start=3):
        os.dup2(fd, target)
    os.closerange(3 + len(fds), top)
    return list(range(3, 3 + len(fds)))


def _child(job, test, base_globals, fds):
    """In the forked child: wire the pipes, run the code, exit. Never returns."""
    stdin_fd, out_w, err_w, res_w = fds
    code = 1
    try:
        os.setpgid(0, 0)
        if job.get("memory_bytes"):  # this job's cap, at or below the warm sandbox's own
            cap = min(job["memory_bytes"], resource.getrlimit(resource.RLIMIT_AS)[1])
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        kept = _keep_fds([res_w] if res_w is not None else [])
        res_w = kept[0] if kept else None
        if job.get("prelude"):
            sys.setrecursionlimit(50000)
        mode = job["mode"]
        try:
            compiled = compile(job["code"], "<solution>", "exec")
        except (SyntaxError, ValueError):
            import traceback
            traceback.print_exc()
            code = COMPILE_EXIT
            return
        g = dict(base_globals)
        try:
            exec(compiled, g)
            if mode == "call":
                target = g["Solution"]() if "class Solution" in job["code"] else None
                fn = getattr(target, job["fn_name"]) if target is not None else g[job["fn_name"]]
                result = fn(*test["args"])
                if type(result) is tuple:  # LiveCodeBench turns a top-level tuple into a list
                    result = list(result)
                try:
                    payload = repr(encode(result)).encode()
                except (TypeError, ValueError, RecursionError) as e:
                    sys.stderr.write(f"unencodable return value: {e}\n")
                    code = UNENCODABLE_EXIT
                    return
                _write_all(res_w, payload)
            code = 0
        except SystemExit as e:
            if mode == "stdin":  # LiveCodeBench: exit() ends the program normally
                code = 0
            else:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except MemoryError:
            code = MEMORY_EXIT
        except BaseException as e:
            import traceback
            traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # from the submission's frame on
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


# ---- the bootstrap side: trusted ----------------------------------------------------------------------------

def _set_nondumpable():
    """Same-uid processes may not ptrace us or read /proc/1/mem (guards the harness's test code)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def _sweep():
    """Kill every other process in this pid namespace (only when we are its init), then reap."""
    if os.getpid() == 1:
        for name in os.listdir("/proc"):
            if name.isdigit() and name != "1":
                try:
                    os.kill(int(name), signal.SIGKILL)
                except OSError:
                    pass
    _reap()


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _drain(fd, buf, limit):
    """Read what is available from a non-blocking fd into buf; False once it hit EOF."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        buf.extend(chunk)
        if len(buf) > limit:
            return True


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def run_one(job, test, base_globals):
    """Fork a child for one test, watch it under the deadline, return (meta, stdout, stderr)."""
    limit = job["output_limit"]
    stdin_fd = os.memfd_create("stdin")
    _write_all(stdin_fd, test.get("stdin", "").encode())
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe() if job["mode"] == "call" else (None, None)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(job, test, base_globals, (stdin_fd, out_w, err_w, res_w))
    for fd in (stdin_fd, out_w, err_w, res_w):
        if fd is not None:
            os.close(fd)
    readers = {out_r: bytearray(), err_r: bytearray()}
    if res_r is not None:
        readers[res_r] = bytearray()
    for fd in readers:
        os.set_blocking(fd, False)
    pidfd = os.pidfd_open(pid)
    deadline = start + job["timeout_s"]
    status, returncode, open_fds = None, None, set(readers)
    while True:
        now = time.monotonic()
        if now >= deadline:
            _kill_group(pid)
            status = "timeout"
            break
        ready, _, _ = select.select(list(open_fds) + [pidfd, 0], [], [], deadline - now)
        if 0 in ready and _abort_requested():
            _kill_group(pid)
            status = "aborted"
            break
        for fd in ready:
            if fd not in (pidfd, 0) and not _drain(fd, readers[fd], limit):
                open_fds.discard(fd)
        if any(len(buf) > limit for buf in readers.values()):  # stdout, stderr, and a call's return value
            _kill_group(pid)
            status = "output_limit"
            break
        if pidfd in ready:
            break
    _, wstatus = os.waitpid(pid, 0)
    for fd in list(open_fds):  # what the exited child left in the pipes
        _drain(fd, readers[fd], limit)
    _sweep()  # grandchildren (daemons) die with the test
    seconds = time.monotonic() - start
    if status is None:
        if os.WIFSIGNALED(wstatus):
            status, returncode = "killed", -os.WTERMSIG(wstatus)
        else:
            returncode = os.WEXITSTATUS(wstatus)
            status = {0: "ok", MEMORY_EXIT: "memory", COMPILE_EXIT: "compile_error"}.get(returncode, "error")
            if len(readers[out_r]) > limit or len(readers[err_r]) > limit:
                status = "output_limit"
    meta = {"status": status, "returncode": returncode, "seconds": round(seconds, 6)}
    if res_r is not None:
        if status == "ok":
            try:
                meta["result"] = bytes(readers[res_r]).decode()
                if not meta["result"]:
                    raise ValueError
            except ValueError:
                meta["status"] = "error"
                meta["detail"] = "no return value reported"
        elif returncode == UNENCODABLE_EXIT:
            meta["detail"] = "return value is not a plain builtin value"
    for fd in [pidfd] + list(readers):
        os.close(fd)
    return meta, bytes(readers[out_r][:limit]), bytes(readers[err_r][:limit])


# ---- harness mode: asserts run here, the submission answers calls from another process ---------------------

def _serve(job, conn_r, conn_w):
    """The submission's process: define its functions, then answer (name, args) calls until EOF."""
    try:
        os.setpgid(0, 0)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        conn_r, conn_w = _keep_fds([conn_r, conn_w])
        g = {"__name__": "__main__", "__builtins__": __builtins__}
        try:
            exec(compile(job["code"], "<solution>", "exec"), g)
            functions = sorted(n for n, v in g.items() if callable(v) and not isinstance(v, type(sys))
                               and not n.startswith("__"))
            modules = {n: v.__name__ for n, v in g.items() if isinstance(v, type(sys))}
            ready = ["ok", {"functions": functions, "modules": modules}]
        except BaseException as e:
            ready = ["error", f"{type(e).__name__}: {e}"[:500]]
        write_literal(conn_w, ready)
        while True:
            name, args = read_literal(conn_r)
            try:
                value = g[name](*decode(args))
                reply = ["ok", encode(value)]
            except BaseException as e:  # SystemExit included: it ends this call, not the tests
                reply = ["raise", type(e).__name__, str(e)[:500]]
            write_literal(conn_w, reply)
    except BaseException:
        pass
    os._exit(0)


class _Server:
    def __init__(self, job):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.to_child)
            os.close(self.from_child)
            _serve(job, to_child_r, from_child_w)
        os.close(to_child_r)
        os.close(from_child_w)
        self.deadline = 0.0

    def call(self, name, args):
        write_literal(self.to_child, [name, encode(list(args))])
        left = self.deadline - time.monotonic()
        if left <= 0 or not select.select([self.from_child], [], [], left)[0]:
            raise _Timeout()
        reply = read_literal(self.from_child)
        if reply[0] == "ok":
            return decode(reply[1])
        import builtins
        error = getattr(builtins, reply[1], None)
        if isinstance(error, type) and issubclass(error, Exception):
            raise error(reply[2])
        raise RuntimeError(f"{reply[1]}: {reply[2]}")


class _Timeout(BaseException):
    pass


def _referenced(code):
    """Every global name a compiled piece of code (and the functions in it) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, type(code)):
            names |= _referenced(const)
    return names


def _loaded(ready):
    """The submission's "ready" message as (status, detail, functions, modules); its shape is checked (it comes
    from the untrusted process)."""
    if (isinstance(ready, list) and len(ready) == 2 and ready[0] == "ok" and isinstance(ready[1], dict)
            and isinstance(ready[1].get("functions"), list) and isinstance(ready[1].get("modules"), dict)
            and all(isinstance(n, str) for n in ready[1]["functions"])
            and all(isinstance(k, str) and isinstance(v, str) for k, v in ready[1]["modules"].items())):
        return "ok", "", set(ready[1]["functions"]), ready[1]["modules"]
    if isinstance(ready, list) and len(ready) == 2 and ready[0] in ("error", "timeout") and isinstance(ready[1], str):
        return ready[0], ready[1], set(), {}
    return "error", "the submission's process sent a malformed message", set(), {}


def run_harness(job, server, tests, channel):
    """Each test is trusted code (setup + asserts) run here; the submission's entry points (`job["entry"]`: the
    names the problem asks for; without it, the names the test reads that are not builtins) are proxies into its
    process. A problem's trusted prompt (`job["trusted"]`: HumanEval's, with the helpers its tests use) is run here
    first, so a submission cannot replace those helpers, nor a builtin, nor anything but what it was asked for."""
    import builtins
    import importlib
    try:
        if select.select([server.from_child], [], [], job["timeout_s"])[0]:
            ready = read_literal(server.from_child)
        else:
            ready = ["timeout", "the submission did not finish loading within the time limit"]
    except (EOFError, ValueError, OSError):
        ready = ["error", "the submission's process died while loading"]
    status, detail, functions, modules = _loaded(ready)
    for i, test in enumerate(tests):
        start = time.monotonic()
        server.deadline = start + job["timeout_s"]
        meta = {"i": i, "status": "ok", "returncode": 0}
        err = b""
        if status == "timeout":
            meta.update(status="timeout", returncode=None)
        elif status != "ok":
            meta.update(status="compile_error" if "SyntaxError" in detail else "error", returncode=1)
            err = detail.encode()
        else:
            compiled = compile(test["code"], "<tests>", "exec")
            reads = _referenced(compiled)
            entry = set(job["entry"]) if job.get("entry") else reads - set(dir(builtins))
            g = {"__name__": "__harness__"}
            for alias, module in modules.items():  # the tests may use a module the solution imported
                if alias in reads and not hasattr(builtins, alias):
                    try:
                        g[alias] = importlib.import_module(module)
                    except ImportError:
                        pass
            if job.get("trusted"):
                try:
                    exec(compile(job["trusted"], "<prompt>", "exec"), g)
                except Exception:  # noqa: BLE001 - a prompt that does not run alone: its helpers are not needed
                    pass
            for name in functions & entry:  # what the problem asked for answers through the server
                g[name] = (lambda n: lambda *a: server.call(n, a))(name)
            try:
                exec(compiled, g)
            except _Timeout:
                meta.update(status="timeout", returncode=None)
            except (EOFError, OSError):
                meta.update(status="error", returncode=1)
                err = b"the submission's process died"
            except BaseException as e:
                meta.update(status="error", returncode=1)
                err = f"{type(e).__name__}: {e}"[:2000].encode()
        meta["seconds"] = round(time.monotonic() - start, 6)
        write_record(channel, meta, b"", err)
        if meta["status"] == "timeout":
            break  # the server is stuck in a call: the remaining tests cannot run
        if meta["status"] != "ok" and job.get("stop_on_fail"):
            break


_ABORTED = False


def _abort_requested():
    """The parent wrote an abort frame (the job is decided): note it, so the job loop stops too."""
    global _ABORTED
    try:
        message = read_job(0)
    except EOFError:
        message = {"abort": True}
    _ABORTED = _ABORTED or bool(message.get("abort"))
    return _ABORTED


def _wipe(top):
    """Empty a scratch directory between jobs; False when something could not be removed."""
    clean = True
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                clean = False
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                try:
                    os.rmdir(path)
                except OSError:
                    clean = False
    return clean and not os.listdir(top)


def run_job(job, channel, cache):
    """One submission: every test, each reported as it ends, then a "done" record."""
    global _ABORTED
    _ABORTED = False
    if job["mode"] == "harness":
        server = _Server(job)  # forked before the tests (and their expected values) are read
        judge = os.fork()  # reads and runs the tests: this process never holds them, so no later submission,
        if judge == 0:     # forked from it, can find them in its memory
            code = 1
            try:
                run_harness(job, server, read_job(0)["tests"], channel)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(judge, 0)
        for fd in (server.to_child, server.from_child):
            os.close(fd)
        if status != 0:  # the trusted tests themselves failed to run (or the judge died): not the submission's
            os._exit(3)  # doing; the parent sees the sandbox end and reports an infrastructure failure
    else:
        if job.get("prelude") and "prelude" not in cache:
            cache["prelude"] = _prelude_globals(job)
        base = cache["prelude"] if job.get("prelude") else {"__name__": "__main__", "__builtins__": __builtins__}
        for i, test in enumerate(job["tests"]):
            meta, out, err = run_one(job, test, base)
            meta["i"] = i
            if meta["status"] == "aborted":
                break
            write_record(channel, meta, out, err)
            if meta["status"] != "ok" and job.get("stop_on_fail"):
                break
            if select.select([0], [], [], 0)[0] and _abort_requested():
                break
    _sweep()
    clean = all(_wipe(d) for d in ("/tmp", "/dev/shm") if os.path.isdir(d) and os.getpid() == 1)
    write_record(channel, {"status": "done", "clean": clean, "aborted": _ABORTED})


def main():
    """Serve jobs until stdin closes: a warm sandbox runs many submissions, one at a time."""
    # loaded once here, so every forked run finds them imported: the interpreter's cell runner
    # (grpo/rollout/tools.py) needs them, and importing ast alone costs a child ~14 ms, more than the rest of a run
    import ast, contextlib, io, linecache, traceback  # noqa: E401, F401

    channel = os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 1)
    _set_nondumpable()  # no same-uid ptrace of this process (it holds harness tests and the record channel)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    cache = {}
    while True:
        try:
            job = read_job(0)
        except EOFError:
            return
        if job.get("abort"):
            continue  # a late abort for a job that already ended
        run_job(job, channel, cache)


if __name__ == "__main__":
    main()
