"""Code verification: run a completion's program in the sandbox and grade it as LiveCodeBench does.

    verify(completion, problem, *, timeout_s=6.0, memory_mb=1024) -> VerifyResult
    verify_batch(completions, problems, *, workers=2, ...) -> list[VerifyResult]

Problems in LiveCodeBench format (`question_content`, `starter_code`, `public_test_cases` /
`private_test_cases` as JSON strings or lists of {input, output, testtype}, `metadata.func_name`), or
HumanEval / MBPP style (test code with asserts + an entry point).

Grading follows LiveCodeBench's current grader (`lcb_runner/evaluation/testing_util.py`):
- stdin mode: output and expected are stripped, split into lines, each line stripped; the line counts must
  match; lines equal as strings, or as lists of `Decimal` tokens (no float tolerance: "2.50" == "2.5", but
  "0.3333333" != "0.333333333"). `exit()` / `sys.exit()` end a program normally.
- call mode: `Solution().<func_name>(*args)` when the code defines `class Solution`, else the function;
  a top-level tuple becomes a list; Python `==` against the JSON-decoded expected value.
- its import prelude (`from collections import *`, ...) and `sys.setrecursionlimit(50000)`, in both modes.
- the first failing test ends the run; reward 1.0 only when every test passes. `partial=True` runs every
  test and rewards the fraction passed.
A tolerant numeric comparison exists only as an explicit per-problem option: `problem["tolerance"] =
{"abs": 1e-6, "rel": 1e-6}`.
LiveCodeBench expected outputs never enter the sandbox: the program's output comes out and is compared here.
HumanEval / MBPP tests are code whose asserts hold the expected values: they run in the sandbox's trusted
bootstrap, which the submission's process cannot read or ptrace, and call the submission's functions through
a pipe that carries only plain values (see `sandbox._bootstrap`).
An infrastructure failure (the sandbox could not run) is reason ``infra_error`` with reward NaN, never 0 or 1:
training must drop those samples rather than learn from them.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import math
import pickle
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sandbox import Limits, Sandbox, SandboxError, default_sandbox
from sandbox.runner import decode_result
from verifiers import VerifyResult

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[ \t]*$", re.MULTILINE)
_STATUS_REASON = {"compile_error": "compile_error", "error": "runtime_error", "killed": "runtime_error",
                  "timeout": "timeout", "memory": "memory", "output_limit": "wrong_answer"}


class ProblemError(ValueError):
    """A problem dict that cannot be graded (missing tests, malformed test cases); names the field."""


@dataclass(frozen=True)
class Problem:
    kind: str  # "stdin", "call" or "harness"
    inputs: tuple = ()  # stdin strings, or argument lists (call mode)
    outputs: tuple = ()  # expected stdout strings, or expected values (call mode)
    fn_name: str | None = None
    harness_tests: tuple = ()  # harness mode: trusted test code, one string per test
    entry_point: str | None = None
    prompt: str = ""
    entry_names: tuple[str, ...] = ()  # MBPP: what its reference code defines (the names the tests may call)
    tolerance: dict | None = None


def extract_code(completion: str, *, languages: tuple[str, ...] = ("python", "py", "python3", "")) -> str | None:
    """The last fenced code block in one of `languages` ("" is an unlabeled fence), or None."""
    fences = list(_FENCE.finditer(completion))
    blocks = []
    i = 0
    while i + 1 < len(fences):
        opening, closing = fences[i], fences[i + 1]
        if closing.group(1) == "":
            blocks.append((opening.group(1).lower(), completion[opening.end() + 1 : closing.start()]))
            i += 2
        else:
            i += 1
    for language, body in reversed(blocks):
        if language in languages and body.strip():
            return body
    return None


class _OnlyStr(pickle.Unpickler):
    def find_class(self, module, name):  # the payload is a pickled str: no class is ever needed
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_cases(value, field: str) -> list[dict]:
    """Test cases as a list of dicts, from a list, a JSON string, or LiveCodeBench-lite's base64/zlib/pickle."""
    if value in (None, "", []):
        return []
    if isinstance(value, list):
        cases = value
    elif isinstance(value, str):
        try:
            cases = json.loads(value)
        except ValueError:
            try:
                raw = zlib.decompress(base64.b64decode(value))
                cases = json.loads(_OnlyStr(io.BytesIO(raw)).load())
            except Exception as e:
                raise ProblemError(f"{field}: neither JSON nor LiveCodeBench's compressed form ({e})") from e
    else:
        raise ProblemError(f"{field}: expected a list or a JSON string, got {type(value).__name__}")
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or "input" not in case or "output" not in case:
            raise ProblemError(f"{field}[{i}]: each test case needs 'input' and 'output'")
    return cases


def _runs_alone(code: str) -> bool:
    """Does it parse as a module of its own (a HumanEval prompt whose function has its docstring for a body)?"""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _defined(code: str) -> tuple[str, ...]:
    """The functions and classes a reference solution defines at its top level (none when it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return ()
    return tuple(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def load_problem(problem: dict) -> Problem:
    """Normalise a LiveCodeBench, HumanEval or MBPP problem dict; ProblemError names what is wrong."""
    if not isinstance(problem, dict):
        raise ProblemError(f"a problem must be a dict, got {type(problem).__name__}")
    if "test" in problem and "entry_point" in problem:  # HumanEval
        test = f"{problem['test']}\n\ncheck({problem['entry_point']})\n"
        return Problem("harness", harness_tests=(test,), entry_point=problem["entry_point"],
                       prompt=problem.get("prompt", ""))
    if "test_list" in problem:  # MBPP
        setup = "\n".join(problem.get("test_imports", []) or []) + "\n" + (problem.get("test_setup_code") or "")
        tests = tuple(f"{setup}\n{t}\n" for t in problem["test_list"])
        if not tests:
            raise ProblemError("test_list: no tests")
        return Problem("harness", harness_tests=tests, entry_names=_defined(problem.get("code") or ""))
    cases = _load_cases(problem.get("public_test_cases"), "public_test_cases") + _load_cases(
        problem.get("private_test_cases"), "private_test_cases")
    if not cases:
        raise ProblemError("no tests: public_test_cases and private_test_cases are both empty or missing")
    metadata = problem.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata) if metadata.strip() else {}
        except ValueError as e:
            raise ProblemError(f"metadata: not JSON ({e})") from e
    fn_name = metadata.get("func_name")
    if fn_name or any(c.get("testtype") == "functional" for c in cases):
        if not fn_name:
            raise ProblemError("metadata.func_name is required for functional (call-based) tests")
        try:
            inputs = tuple([json.loads(line) for line in c["input"].split("\n")] for c in cases)
            outputs = tuple(json.loads(c["output"]) for c in cases)
        except ValueError as e:
            raise ProblemError(f"functional test cases must hold one JSON value per line: {e}") from e
        return Problem("call", inputs, outputs, fn_name=fn_name, tolerance=problem.get("tolerance"))
    return Problem("stdin", tuple(c["input"] for c in cases), tuple(c["output"] for c in cases),
                   tolerance=problem.get("tolerance"))


def _tokens_equal(got: str, expected: str, tolerance: dict | None) -> bool:
    """Token by token as numbers; anything the program printed that does not compare as a number (sNaN, a
    token Decimal refuses) is a mismatch, never an error."""
    try:
        g, e = [Decimal(t) for t in got.split()], [Decimal(t) for t in expected.split()]
        if tolerance is None or len(g) != len(e):
            return g == e
        abs_tol, rel_tol = float(tolerance.get("abs", 0.0)), float(tolerance.get("rel", 0.0))
        return all(math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol) for a, b in zip(g, e))
    except (ArithmeticError, ValueError):  # InvalidOperation is an ArithmeticError
        return False


def stdout_matches(got: str, expected: str, tolerance: dict | None = None) -> bool:
    """LiveCodeBench's stdin-mode comparison (see the module docstring); `tolerance` only when asked."""
    got_lines = [line.strip() for line in got.strip().split("\n")]
    expected_lines = [line.strip() for line in expected.strip().split("\n")]
    if len(got_lines) != len(expected_lines):
        return False
    return all(g == e or _tokens_equal(g, e, tolerance) for g, e in zip(got_lines, expected_lines))


def _test_passed(problem: Problem, i: int, record) -> bool:
    if record.status != "ok":
        return False
    if problem.kind == "harness":
        return True
    if problem.kind == "stdin":
        return stdout_matches(record.stdout.decode("utf-8", errors="replace"), problem.outputs[i], problem.tolerance)
    try:
        return bool(decode_result(record.result) == problem.outputs[i])
    except Exception:  # noqa: BLE001 - whatever the program returned, a value that does not compare fails the test
        return False


def _job(code: str, problem: Problem, partial: bool) -> tuple[dict, dict | None]:
    if problem.kind == "harness":
        if problem.entry_point and not re.search(rf"^\s*def\s+{re.escape(problem.entry_point)}\b", code, re.M):
            code = problem.prompt + code  # a completion that continues the prompt's signature
        elif (problem.prompt and _runs_alone(problem.prompt)
              and not re.search(r"^\s*from\s+__future__\s+import", code, re.M)):  # which must come first
            code = problem.prompt + "\n" + code  # one that rewrote it: the prompt's imports and helpers still there
        entry = [problem.entry_point] if problem.entry_point else list(problem.entry_names)
        return ({"mode": "harness", "code": code, "stop_on_fail": not partial, "entry": entry,
                 "trusted": problem.prompt}, {"tests": [{"code": t} for t in problem.harness_tests]})
    tests = [{"stdin": x} for x in problem.inputs] if problem.kind == "stdin" else [{"args": a} for a in problem.inputs]
    return ({"mode": problem.kind, "code": code, "tests": tests, "fn_name": problem.fn_name, "prelude": True,
             "stop_on_fail": not partial}, None)


def verify(completion: str, problem: dict, *, timeout_s: float = 6.0, memory_mb: int = 1024, partial: bool = False,
           sandbox: Sandbox | None = None, code_languages: tuple[str, ...] = ("python", "py", "python3", "")
           ) -> VerifyResult:
    """Grade the last fenced python block of `completion` on every test of `problem` (per test `timeout_s`).

    Reasons: correct, no_code, compile_error, runtime_error, wrong_answer, timeout, memory, infra_error.
    `VerifyResult.tests` holds one verdict per test ("pass", a reason, or "not_run").
    """
    loaded = load_problem(problem)
    code = extract_code(completion, languages=code_languages)
    n = len(loaded.harness_tests) if loaded.kind == "harness" else len(loaded.inputs)
    if code is None:
        return VerifyResult(0.0, False, "no_code", None, tests=("not_run",) * n)
    verdicts: list[str] = []

    def on_record(i: int, record) -> bool:
        if i >= n:  # a deadline that passed after the last test: nothing left to judge
            return False
        passed = _test_passed(loaded, i, record)
        verdicts.append("pass" if passed else _STATUS_REASON.get(record.status, "wrong_answer"))
        return passed or partial

    job, secret = _job(code, loaded, partial)
    try:
        (sandbox or default_sandbox()).run_job(job, timeout_s=timeout_s, limits=Limits(memory_mb=memory_mb),
                                               secret=secret, on_record=on_record)
    except SandboxError:
        return VerifyResult(math.nan, False, "infra_error", code, tests=("not_run",) * n)
    verdicts += ["not_run"] * (n - len(verdicts))
    passed = verdicts.count("pass")
    failures = [v for v in verdicts if v not in ("pass", "not_run")]
    reason = "correct" if passed == n else (failures[0] if failures else "wrong_answer")
    reward = passed / n if partial else float(passed == n)
    return VerifyResult(reward, passed == n, reason, code, tests=tuple(verdicts))


def verify_batch(completions: list[str], problems: list[dict], *, workers: int = 2, timeout_s: float = 6.0,
                 memory_mb: int = 1024, partial: bool = False, sandbox: Sandbox | None = None) -> list[VerifyResult]:
    """`verify` over pairs, `workers` sandboxes at a time."""
    if len(completions) != len(problems):
        raise ValueError(f"verify_batch got {len(completions)} completions but {len(problems)} problems")
    box = sandbox or default_sandbox()
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda cp: verify(cp[0], cp[1], timeout_s=timeout_s, memory_mb=memory_mb,
                                                partial=partial, sandbox=box), zip(completions, problems)))
