"""Refusing without namespaces, the explicit rlimits mode, and the contract of sandbox.run."""

import logging
from pathlib import Path

import pytest

import sandbox
from sandbox import isolation, runner


def test_without_working_namespaces_the_sandbox_refuses_clearly(monkeypatch):
    monkeypatch.setattr(runner, "find_bwrap", lambda: Path("/bin/false"))  # a bwrap that cannot start
    with pytest.raises(sandbox.SandboxUnavailable, match="bwrap sandbox cannot start"):
        sandbox.Sandbox(retries=0)


def test_the_rlimits_mode_is_explicit_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="sandbox.runner"):
        box = sandbox.Sandbox(isolation="rlimits")
    assert "no network or filesystem isolation" in caplog.text
    try:
        assert sandbox.run("print(6 * 7)", timeout_s=2, sandbox=box).stdout == "42\n"
        assert sandbox.run("while True: pass", timeout_s=0.5, sandbox=box).status == "timeout"
        assert sandbox.run("x = bytearray(4 << 30)", timeout_s=2, memory_mb=512, sandbox=box).status == "memory"
    finally:
        box.close()


def test_unknown_isolation_and_bad_limits_are_errors():
    with pytest.raises(ValueError, match="isolation"):
        sandbox.Sandbox(isolation="docker")
    with pytest.raises(ValueError, match="output_limit_mb"):
        sandbox.Sandbox(output_limit_mb=64)
    with pytest.raises(TypeError, match="code must be str"):
        sandbox.run(b"print(1)", timeout_s=1)


def test_run_result_fields():
    result = sandbox.run("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)", timeout_s=2)
    assert (result.status, result.returncode, result.stdout, result.stderr) == ("error", 3, "out\n", "err\n")
    assert 0 < result.elapsed_s < 2


def test_a_syntax_error_is_an_error_with_the_traceback():
    result = sandbox.run("print(", timeout_s=2)
    assert result.status == "error" and "SyntaxError" in result.stderr


def test_the_interpreter_must_be_runnable_by_the_sandbox_uid(tmp_path):
    with pytest.raises(sandbox.SandboxUnavailable, match="interpreter"):
        isolation.find_python(str(tmp_path / "no-python"))
