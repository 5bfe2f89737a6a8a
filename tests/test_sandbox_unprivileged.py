"""The sandbox works when the caller is an ordinary user (a cluster node), not only as root."""

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from sandbox.isolation import _world_accessible, bwrap_copy, find_bwrap

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path("/usr/bin/python3")

PROGRAM = textwrap.dedent("""
    import os, sandbox
    assert os.getuid() != 0
    print(sandbox.run("import os; print(os.getuid() == %d, 6 * 7)" % os.getuid(), timeout_s=5).stdout.strip())
    print(sandbox.run("while True: pass", timeout_s=0.5).status)
    print(sandbox.run("import socket; socket.create_connection(('127.0.0.1', 22), timeout=1)", timeout_s=5).status)
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="already running as an ordinary user: the other tests cover it")
@pytest.mark.skipif(not PYTHON.exists() or not _world_accessible(REPO / "sandbox" / "__init__.py"),
                    reason="needs /usr/bin/python3 and a checkout an ordinary user can read")
def test_an_ordinary_user_can_run_the_sandbox(tmp_path):
    bwrap = bwrap_copy(find_bwrap())  # a copy an ordinary user can execute
    os.chmod(tmp_path, 0o755)
    env = {"PATH": f"{bwrap.parent}:/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path),
           "TMPDIR": str(tmp_path)}
    result = subprocess.run([str(PYTHON), "-c", PROGRAM], env=env, user=65534, group=65534, extra_groups=[],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:3] == ["True 42", "timeout", "error"]
