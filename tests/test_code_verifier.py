"""The code verifier: extraction, LiveCodeBench's comparison rules, real HumanEval / MBPP / LiveCodeBench data,
and grader tampering."""

import json
import math
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxUnavailable
from verifiers.code import ProblemError, extract_code, load_problem, stdout_matches, verify, verify_batch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
try:
    BOX = Sandbox()
except SandboxUnavailable as e:  # pragma: no cover
    pytest.skip(f"no bubblewrap sandbox on this machine: {e}", allow_module_level=True)
needs_data = pytest.mark.skipif(not (DATA / "humaneval.jsonl").exists(), reason=f"no benchmark data at {DATA}")


def rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def fenced(code: str) -> str:
    return f"Here is my solution.\n\n```python\n{code}\n```\n"


LEAP = {"public_test_cases": json.dumps([{"input": f"{y}\n", "output": f"{d}\n", "testtype": "stdin"}
                                         for y, d in ((2023, 365), (1992, 366), (1800, 365), (1600, 366))]),
        "private_test_cases": "", "metadata": "{}"}
WINNERS = {"public_test_cases": [
    {"input": "4\n[[0, 0], [1, 0], [1, 0], [2, 1], [2, 1], [2, 0]]", "output": "2", "testtype": "functional"},
    {"input": "5\n[[1, 1], [1, 2], [1, 3], [1, 4]]", "output": "0", "testtype": "functional"}],
    "metadata": {"func_name": "winningPlayerCount"}}
LEAP_OK = "y = int(input())\nprint(366 if y % 400 == 0 or (y % 4 == 0 and y % 100) else 365)"
WINNERS_OK = """
class Solution:
    def winningPlayerCount(self, n: int, pick: List[List[int]]) -> int:
        counts = defaultdict(Counter)
        for x, y in pick:
            counts[x][y] += 1
        return sum(1 for i in range(n) if counts[i] and max(counts[i].values()) > i)
"""


# ---- extraction and loading ----------------------------------------------------------------------------

def test_the_last_python_block_is_graded():
    text = "```python\nprint(1)\n```\nthen\n```text\nnot code\n```\n```py\nprint(2)\n```\n```\nprint(3)\n```"
    assert extract_code(text) == "print(3)\n"
    assert extract_code(text, languages=("py",)) == "print(2)\n"
    assert extract_code("no code at all") is None
    assert extract_code("```python\n\n```") is None


def test_problem_errors_name_the_field():
    with pytest.raises(ProblemError, match="no tests"):
        load_problem({"public_test_cases": "[]"})
    with pytest.raises(ProblemError, match=r"public_test_cases\[0\]"):
        load_problem({"public_test_cases": [{"input": "1"}]})
    with pytest.raises(ProblemError, match="func_name"):
        load_problem({"public_test_cases": [{"input": "1", "output": "1", "testtype": "functional"}]})
    with pytest.raises(ProblemError, match="private_test_cases"):
        load_problem({"public_test_cases": LEAP["public_test_cases"], "private_test_cases": "not json!"})
    with pytest.raises(ProblemError, match="must be a dict"):
        load_problem("a string")


def test_livecodebench_lite_compressed_private_tests_load():
    import base64
    import pickle
    import zlib

    cases = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()
    assert load_problem({"public_test_cases": "[]", "private_test_cases": packed}).inputs == ("1\n",)


def test_a_pickled_object_other_than_a_string_is_refused():
    import base64
    import pickle
    import zlib

    packed = base64.b64encode(zlib.compress(pickle.dumps(Path("/")))).decode()
    with pytest.raises(ProblemError):
        load_problem({"public_test_cases": "[]", "private_test_cases": packed})


# ---- LiveCodeBench's stdout comparison, rule by rule ----------------------------------------------------------

@pytest.mark.parametrize("got,expected,same", [
    ("1 2\n", "1 2", True),  # trailing newline
    ("  1 2  \n\n\n", "1 2", True),  # surrounding spaces, trailing blank lines
    ("1  2", "1 2", True),  # numeric tokens compare as Decimal lists
    ("2.50", "2.5", True),
    ("1e2", "100", True),
    ("a  b", "a b", False),  # non-numeric tokens compare as strings
    ("1\n\n2", "1\n2", False),  # a blank line in the middle
    ("1\n2", "1 2", False),  # one value per line instead of one line
    ("3.3333333333333335", "3.3333333333", False),  # no float tolerance
    ("Yes", "yes", False),  # case-sensitive
    ("", "0", False),
])
def test_stdout_rules(got, expected, same):
    assert stdout_matches(got, expected) is same


def test_tolerance_only_when_the_problem_asks():
    assert not stdout_matches("3.3333333", "3.33333333")
    assert stdout_matches("3.3333333", "3.33333333", {"abs": 1e-6})


# ---- grading ----------------------------------------------------------------------------------------

def test_stdin_problem_correct_and_wrong():
    ok = verify(fenced(LEAP_OK), LEAP, sandbox=BOX)
    assert (ok.reward, ok.reason, ok.tests) == (1.0, "correct", ("pass",) * 4)
    wrong = verify(fenced("print(365)"), LEAP, sandbox=BOX)
    assert (wrong.reward, wrong.reason, wrong.tests) == (0.0, "wrong_answer", ("pass", "wrong_answer", "not_run",
                                                                               "not_run"))


def test_partial_reward_is_opt_in():
    result = verify(fenced("print(365)"), LEAP, partial=True, sandbox=BOX)
    assert result.reward == 0.5 and not result.correct
    assert result.tests == ("pass", "wrong_answer", "pass", "wrong_answer")


def test_call_problem_uses_solution_class_and_the_prelude():
    assert verify(fenced(WINNERS_OK), WINNERS, sandbox=BOX).correct


def test_call_problem_top_level_tuple_becomes_a_list_but_nested_tuples_stay():
    problem = {"public_test_cases": [{"input": "3", "output": "[1, 2]", "testtype": "functional"}],
               "metadata": {"func_name": "f"}}
    assert verify(fenced("def f(n):\n    return (1, 2)"), problem, sandbox=BOX).correct
    problem["public_test_cases"][0]["output"] = "[[1, 2]]"
    assert not verify(fenced("def f(n):\n    return [(1, 2)]"), problem, sandbox=BOX).correct


@pytest.mark.parametrize("code,reason", [
    ("print(int(input()) +", "compile_error"),
    ("raise ValueError('boom')", "runtime_error"),
    ("while True: pass", "timeout"),
    ("x = bytearray(4 << 30)", "memory"),
    ("import sys\nsys.stdout.write('1' * (40 << 20))", "wrong_answer"),
])
def test_failure_reasons(code, reason):
    result = verify(fenced(code), LEAP, timeout_s=1.0, sandbox=BOX)
    assert (result.reward, result.reason) == (0.0, reason)


def test_no_code_block_is_no_code():
    assert verify("I would print the answer.", LEAP, sandbox=BOX).reason == "no_code"


def test_exit_in_stdin_mode_ends_the_program_normally():
    code = "y = int(input())\nprint(366 if y % 400 == 0 or (y % 4 == 0 and y % 100) else 365)\nexit(3)"
    assert verify(fenced(code), LEAP, sandbox=BOX).correct


def test_deep_recursion_works_as_on_livecodebench():
    code = "import sys\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\nprint(depth(30000) * 0 + 365)"
    result = verify(fenced(code), LEAP, sandbox=BOX)
    assert result.tests[0] == "pass"


def test_an_infrastructure_failure_is_never_a_reward_of_zero_or_one():
    broken = Sandbox()
    broken.close()  # no warm sandbox left: the next job must start one, with a python that is not there
    broken.python = Path("/nonexistent/python3")
    broken.retries = 1
    result = verify(fenced(LEAP_OK), LEAP, sandbox=broken)
    assert result.reason == "infra_error" and math.isnan(result.reward) and not result.correct


# ---- tampering with the grader --------------------------------------------------------------------------

HE_ADD = {"prompt": "def add(a, b):\n", "entry_point": "add",
          "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(5, 7) == 12\n"}


@pytest.mark.parametrize("attack", [
    "import sys\nsys.exit(0)",  # exit before the asserts
    "import os\nos._exit(0)",
    "def add(a, b):\n    import os; os._exit(0)",
    "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\ndef add(a, b):\n    return 0",
    "class Yes:\n    def __eq__(self, other): return True\ndef add(a, b):\n    return Yes()",  # forged equality
    "class Int(int):\n    def __eq__(self, other): return True\ndef add(a, b):\n    return Int(0)",
    "import os, struct, json\nm = json.dumps({'i': 0, 'status': 'ok', 'returncode': 0}).encode()\n"
    "for fd in range(1, 10):\n    try: os.write(fd, struct.pack('<III', len(m), 0, 0) + m)\n    except OSError: pass\n"
    "def add(a, b):\n    return 0",  # forged records on every fd
    "def add(a, b):\n    return int(open('/proc/1/cmdline').read() and 0)",
])
def test_harness_tampering_never_passes(attack):
    result = verify(fenced(attack), HE_ADD, sandbox=BOX)
    assert not result.correct and result.reward == 0.0


HE_TRUNC = {"prompt": "def truncate_number(x: float) -> float:\n    \"\"\"The decimal part of x.\"\"\"\n",
            "entry_point": "truncate_number",
            "test": "def check(candidate):\n    assert abs(candidate(3.5) - 0.5) < 1e-6\n"}
HE_ZERO = {"prompt": "import math\n\ndef poly(xs, x):\n    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n\n"
                     "def find_zero(xs):\n    \"\"\"A zero of the polynomial.\"\"\"\n",
           "entry_point": "find_zero",
           "test": "def check(candidate):\n    for c in ([1, 2], [-6, 11, -6, 1]):\n"
                   "        assert math.fabs(poly(c, candidate(c))) < 1e-4\n"}
MBPP_SIM = {"test_list": ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))"],
            "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"}


@pytest.mark.parametrize("problem, attack", [
    (HE_TRUNC, "def truncate_number(x):\n    return 42\ndef abs(v):\n    return 0"),  # a builtin the asserts use
    (HE_ZERO, "import math\ndef poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 123"),  # the prompt's helper
    (MBPP_SIM, "def similar_elements(a, b):\n    return None\ndef set(*a):\n    return 0"),
], ids=["builtin", "prompt-helper", "mbpp-builtin"])
def test_a_submission_cannot_replace_what_the_asserts_rely_on(problem, attack):
    """Only what the problem asks for (HumanEval's entry point, the functions MBPP's reference defines) answers from
    the submission; builtins and the prompt's helpers stay the trusted ones."""
    assert not verify(fenced(attack), problem, sandbox=BOX).correct


@pytest.mark.parametrize("problem, honest", [
    (HE_TRUNC, "def truncate_number(x):\n    return x % 1.0"),
    (HE_ZERO, "def find_zero(xs):\n    lo, hi = -100.0, 100.0\n    for _ in range(200):\n"
              "        mid = (lo + hi) / 2\n        if poly(xs, lo) * poly(xs, mid) <= 0: hi = mid\n"
              "        else: lo = mid\n    return lo"),
    (MBPP_SIM, "def similar_elements(a, b):\n    return tuple(set(a) & set(b))"),
], ids=["builtin", "prompt-helper", "mbpp-builtin"])
def test_the_honest_solutions_of_those_problems_pass(problem, honest):
    assert verify(fenced(honest), problem, sandbox=BOX).correct


def test_a_later_submission_cannot_find_an_earlier_jobs_tests_in_memory():
    """The tests are read and run in a process forked for the job, never in the reused sandbox process that the next
    submissions are forked from: a submission that searches its memory for the previous job's asserts finds
    nothing to copy."""
    problem = {"prompt": "def secret(x):\n", "entry_point": "secret",
               "test": "def check(candidate):\n    assert candidate(17) == 91\n    assert candidate(23) == 57\n"}
    assert verify(fenced("def secret(x):\n    return {17: 91, 23: 57}[x]"), problem, sandbox=BOX).correct
    snoop = ("import gc\n_table = {}\nfor o in gc.get_objects():\n"
             "    if type(o).__name__ == 'function' and o.__code__.co_filename == '<tests>':\n"
             "        c = [k for k in o.__code__.co_consts if isinstance(k, int)]\n"
             "        _table.update(zip(c[0::2], c[1::2]))\n"
             "def secret(x):\n    return _table[x]")
    for _ in range(3):
        assert not verify(fenced(snoop), problem, sandbox=BOX).correct


def test_what_a_program_reports_cannot_crash_the_grader():
    """A malformed return value (call mode) or a printed token Decimal refuses (stdin mode) fails its test."""
    forged = ("import os\nclass Solution:\n    def winningPlayerCount(self, n, pick):\n"
              "        os.write(3, b\"{'b': 0}\")\n        os._exit(0)")
    assert verify(fenced(forged), WINNERS, sandbox=BOX).reason == "wrong_answer"
    assert verify(fenced("print('sNaN')"), LEAP, sandbox=BOX).reason == "wrong_answer"
    assert verify(fenced("print('sNaN')"), {**LEAP, "tolerance": {"abs": 0.5}}, sandbox=BOX).reason == "wrong_answer"


def test_tests_that_do_not_run_are_an_infrastructure_failure_not_a_zero():
    """A problem whose own asserts do not compile: the submission is not to blame, so the verdict is NaN (the
    group is dropped), never a reward of 0."""
    result = verify(fenced("def f(x):\n    return x"), {"test_list": ["assert f(1) == (1"], "code": "def f(x): pass"},
                    sandbox=BOX)
    assert result.reason == "infra_error" and math.isnan(result.reward)


def test_a_rewritten_signature_with_a_future_import_still_runs():
    code = "from __future__ import annotations\ndef truncate_number(x: float) -> float:\n    return x % 1.0"
    assert verify(fenced(code), HE_TRUNC, sandbox=BOX).correct


def test_a_submission_that_never_finishes_loading_is_a_timeout():
    result = verify(fenced("while True:\n    pass\ndef add(a, b):\n    return a + b"), HE_ADD, timeout_s=1,
                    sandbox=BOX)
    assert result.reason == "timeout" and not result.correct


def test_the_honest_harness_solution_passes():
    assert verify(fenced("def add(a, b):\n    return a + b"), HE_ADD, sandbox=BOX).correct
    assert verify("```python\n    return a + b\n```", HE_ADD, sandbox=BOX).correct  # a continued prompt


def test_a_stdin_program_cannot_read_the_expected_output():
    snoop = ("import os\nfor root, dirs, files in os.walk('/'):\n"
             "    if root.startswith(('/proc', '/usr', '/sys')): continue\n"
             "    for f in files: print(os.path.join(root, f))")
    result = verify(fenced(snoop), LEAP, partial=True, sandbox=BOX)
    assert result.reward == 0.0


# ---- real data ---------------------------------------------------------------------------------------

def _broken(problem: dict) -> str:
    """The canonical solution with its result perturbed, so every assert on the value should fail."""
    name = problem["entry_point"]
    return (problem["prompt"] + problem["canonical_solution"] + f"\n_original_{name} = {name}\n"
            f"def {name}(*args, **kwargs):\n    r = _original_{name}(*args, **kwargs)\n"
            "    if isinstance(r, bool): return not r\n    if isinstance(r, (int, float)): return r + 1\n"
            "    if isinstance(r, str): return r + 'x'\n    if isinstance(r, (list, tuple)): return [None] + list(r)\n"
            "    return 'broken'\n")


@needs_data
def test_humaneval_canonical_solutions_all_pass_and_broken_variants_fail():
    problems = rows("humaneval.jsonl")
    good = verify_batch([fenced(p["prompt"] + p["canonical_solution"]) for p in problems], problems, sandbox=BOX)
    assert [p["task_id"] for p, r in zip(problems, good) if not r.correct] == []
    bad = verify_batch([fenced(_broken(p)) for p in problems], problems, sandbox=BOX)
    assert [p["task_id"] for p, r in zip(problems, bad) if r.correct] == []


@needs_data
def test_mbpp_reference_solutions_pass():
    problems = rows("mbpp.jsonl")
    results = verify_batch([fenced(p["code"]) for p in problems], problems, sandbox=BOX)
    failed = {p["task_id"] for p, r in zip(problems, results) if not r.correct}
    # 367, 601, 927 pass class instances (a tree, Pair objects) to the solution: the harness only carries
    # plain values between the tests and the solution's process, by design (see verifiers/code.py)
    assert failed <= {367, 601, 927}


@needs_data
def test_livecodebench_subset_loads_and_grades():
    problems = rows("livecodebench_subset.jsonl")
    loaded = [load_problem(p) for p in problems]
    assert {p.kind for p in loaded} == {"stdin", "call"}
    assert all(len(p.inputs) == len(p.outputs) > 0 for p in loaded)
    by_id = {p["question_id"]: p for p in problems}
    assert verify(fenced(LEAP_OK), by_id["abc365_a"], sandbox=BOX).correct
    assert verify(fenced(WINNERS_OK), by_id["3519"], sandbox=BOX).correct
    # an empty program is a wrong answer (or a runtime error for call problems) everywhere, never a pass
    sample = problems[::10]
    results = verify_batch([fenced("pass")] * len(sample), sample, sandbox=BOX)
    assert all(not r.correct and r.reason in ("wrong_answer", "runtime_error") for r in results)
