"""Attacks on the sandbox, one property per test: each asserts the specific safe outcome and that the host
is unchanged. They all run against one Sandbox in this one process, which must survive every one of them."""

import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

import sandbox
from sandbox.isolation import MAX_SLOTS, SLOT_UID_BASE, SandboxUnavailable

try:
    BOX = sandbox.Sandbox()
except SandboxUnavailable as e:  # pragma: no cover - a machine without user namespaces
    pytest.skip(f"no bubblewrap sandbox on this machine: {e}", allow_module_level=True)


def run(code: str, timeout_s: float = 3.0, **kw) -> sandbox.RunResult:
    start = time.monotonic()
    result = sandbox.run(textwrap.dedent(code), timeout_s=timeout_s, sandbox=BOX, **kw)
    assert time.monotonic() - start < timeout_s + 2.0, "a verdict came later than the limit + 2 s"
    return result


def stray_processes() -> list[str]:
    """Processes of a sandbox slot uid other than the warm sandboxes themselves (bwrap and the bootstrap,
    which is pid 1 of its namespace): anything else outlived the run that started it."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            status = Path(f"/proc/{name}/status").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        in_slot = SLOT_UID_BASE <= uid < SLOT_UID_BASE + MAX_SLOTS or b"/.sandbox/bootstrap.py" in cmdline
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        warm = b"bwrap" in cmdline.split(b"\0")[0] or (len(nspid) > 1 and nspid[-1] == "1")
        if in_slot and not warm and " Z " not in status.replace("\t", " "):
            found.append(f"{name}: {cmdline[:80]!r}")
    return found


@pytest.fixture(autouse=True)
def no_process_survives():
    yield
    deadline = time.monotonic() + 2.0
    while stray_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stray_processes(), "a sandboxed process outlived its run"


def test_loopback_of_the_host_is_unreachable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    result = run(f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=1)
            print("connected")
        except OSError as e:
            print("blocked", type(e).__name__)
    """)
    assert result.stdout.startswith("blocked")
    with pytest.raises(socket.timeout):
        server.accept()  # nothing ever reached the host's listener
    server.close()


def test_no_network_interface_but_loopback_and_no_dns():
    result = run("""
        import socket
        print(sorted(name for _, name in socket.if_nameindex()))
        try:
            socket.getaddrinfo("example.com", 443)
            print("resolved")
        except OSError:
            print("no dns")
    """)
    assert result.stdout.splitlines() == ["['lo']", "no dns"]


def test_fork_bomb_is_contained():
    result = run("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """, timeout_s=2)
    assert result.status == "timeout"


def test_thread_storm_is_capped():
    result = run("""
        import threading, time
        started = 0
        try:
            for _ in range(10000):
                threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
                started += 1
        except RuntimeError:
            print("capped at", started)
    """, timeout_s=5)
    assert "capped at" in result.stdout
    assert int(result.stdout.split()[-1]) <= 64


def test_memory_bomb_is_a_memory_result():
    result = run("x = bytearray(8 << 30)", memory_mb=512)
    assert result.status == "memory"


def test_disk_fill_stops_at_the_scratch_cap():
    result = run("""
        import os
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"x" * (1 << 20))
                    written += 1
        except OSError as e:
            print(written, e.errno)
    """, timeout_s=10)
    written, errno = map(int, result.stdout.split())
    assert errno in (27, 28)  # EFBIG (file size rlimit) or ENOSPC (the tmpfs cap)
    assert written <= 256
    assert not Path("/tmp/fill").exists()


def test_many_files_stay_in_the_scratch_tmpfs():
    result = run("""
        import os
        n = 0
        try:
            for n in range(200000):
                open(f"/tmp/f{n}", "w").close()
        except OSError as e:
            print("stopped", e.errno)
        print("made", n)
    """, timeout_s=10)
    assert result.status in ("ok", "timeout")
    assert not Path("/tmp/f1").exists()


@pytest.mark.parametrize("target", ["/usr/pwned", "/etc/pwned", "/root/pwned", "/home/pwned", "/pwned", "/dev/pwned",
                                    "/proc/pwned"])
def test_writes_outside_scratch_fail(target):
    result = run(f"""
        try:
            open("{target}", "w").write("x")
            print("wrote")
        except OSError as e:
            print("refused", e.errno)
    """)
    assert result.stdout.startswith("refused")
    assert not Path(target).exists()


def test_host_files_are_not_visible():
    here = Path(__file__).resolve()
    result = run(f"""
        import os
        for path in ["/etc/shadow", "/etc/passwd", "/root", "/home", "{here}", "/work", "/etc/hostname"]:
            print(path, os.path.exists(path))
        print(sorted(os.listdir("/")))
    """)
    lines = result.stdout.splitlines()
    assert all(line.endswith(" False") for line in lines[:-1]), lines
    visible = set(eval(lines[-1]))
    assert visible <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "sbin", "tmp", "usr", ".sandbox"}


def test_secrets_in_the_callers_environment_never_appear(monkeypatch):
    secret = "hf_SECRET_TOKEN_dont_leak_123"
    for key in ("HF_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(key, secret)
    result = run("""
        import os, sys
        print(dict(os.environ))
        for pid in ("1", "self"):
            try:
                print(open(f"/proc/{pid}/environ", "rb").read())
            except OSError as e:
                print("no", pid, e.errno)
        sys.stderr.write(repr(dict(os.environ)))
    """)
    assert secret not in result.stdout + result.stderr
    assert "HF_TOKEN" not in result.stdout + result.stderr


def test_killing_the_parent_or_everything_stays_inside():
    result = run("""
        import os, signal
        for target in (os.getppid(), 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError as e:
                print("refused", target, e.errno)
        print("alive")
    """)
    assert result.status in ("ok", "killed")  # kill(-1) may take the program itself down
    assert run("print('still here')").stdout == "still here\n"


def test_infinite_loop_times_out():
    assert run("while True: pass", timeout_s=1).status == "timeout"


def test_sleep_forever_times_out():
    assert run("import time; time.sleep(10**6)", timeout_s=1).status == "timeout"


def test_output_flood_is_capped():
    result = run("""
        import sys
        chunk = "x" * (1 << 20)
        while True:
            sys.stdout.write(chunk)
    """, timeout_s=10)
    assert result.status == "output_limit"
    assert len(result.stdout) <= 16 << 20


def test_stderr_flood_is_capped():
    result = run("import os\nwhile True: os.write(2, b'e' * 65536)", timeout_s=10)
    assert result.status == "output_limit"
    assert len(result.stderr) <= 16 << 20


def test_closing_stdout_then_looping_times_out():
    assert run("import os; os.close(1); os.close(2)\nwhile True: pass", timeout_s=1).status == "timeout"


def test_double_forked_daemon_dies_with_the_run():
    start = time.monotonic()
    result = run("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1000)  # an orphan holding nothing but time
            os._exit(0)
        print("parent done")
    """)
    assert result.stdout == "parent done\n"
    assert time.monotonic() - start < 2.0  # the run did not wait for the daemon


def test_ignoring_sigterm_still_times_out():
    result = run("""
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            pass
    """, timeout_s=1)
    assert result.status == "timeout"


def test_ctypes_segfault_is_killed():
    result = run("import ctypes; ctypes.string_at(0)")
    assert result.status == "killed" and result.returncode == -11


def test_c_stack_overflow_is_contained():
    result = run("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))
        sys.setrecursionlimit(10**9)
        a, b = [], []
        for _ in range(10**6):
            a, b = [a], [b]
        print(a == b)  # C-level recursion far past an 8 MiB stack
    """, timeout_s=10)
    assert result.status in ("killed", "error", "memory")


def test_unbounded_python_recursion_is_contained():
    result = run("""
        import sys
        sys.setrecursionlimit(10**9)
        def f(n): return f(n + 1) + 1
        f(0)
    """, timeout_s=2)
    assert result.status in ("killed", "error", "memory", "timeout")


def test_fd_exhaustion_is_contained():
    result = run("""
        fds = []
        try:
            while True:
                fds.append(open("/dev/null"))
        except OSError as e:
            print("stopped", len(fds), e.errno)
    """)
    assert result.stdout.startswith("stopped") and int(result.stdout.split()[1]) < 300


def test_rlimits_cannot_be_raised():
    result = run("""
        import resource
        for r in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE, resource.RLIMIT_CPU):
            soft, hard = resource.getrlimit(r)
            try:
                resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                print("raised", r)
            except (ValueError, OSError):
                print("refused", r)
    """)
    assert "raised" not in result.stdout and result.stdout.count("refused") == 4


def test_nested_user_namespaces_are_disabled():
    result = run("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.unshare(0x10000000)  # CLONE_NEWUSER
        print(rc, ctypes.get_errno())
    """)
    assert result.stdout.split()[0] == "-1"


def test_ptrace_of_the_bootstrap_is_refused():
    result = run("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())  # PTRACE_ATTACH to pid 1 (the bootstrap)
    """)
    assert result.stdout.split()[0] == "-1"


def test_binary_output_is_decoded_with_replacement():
    result = run("import sys; sys.stdout.buffer.write(bytes(range(256)))")
    assert result.status == "ok" and "\ufffd" in result.stdout


def test_runs_from_many_threads_at_once():
    results = []

    def one(i):
        results.append(run(f"print({i} * 2)").stdout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"{i * 2}\n" for i in range(6))


def test_the_runner_survived_everything():
    assert run("print(sum(range(10)))").stdout == "45\n"
