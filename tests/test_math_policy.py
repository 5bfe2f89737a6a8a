"""Every row of the policy tables (docs/math_policy.md, README.md), judged by the real verifier."""

import pytest
from policy_table import policy_cases

from verifiers.math import judge, verify_batch

CASES = policy_cases()


def test_policy_doc_has_rows():
    assert len(CASES) >= 130, "the policy tables lost rows"
    assert {expected for _, _, expected, _ in CASES} == {True, False}


@pytest.mark.parametrize("gold,completion,expected,row", CASES, ids=[f"{c[0]}|{c[1][-40:]}" for c in CASES])
def test_policy_row(gold, completion, expected, row):
    result = judge(completion, gold)
    assert result.correct is expected, f"{row}\n{completion!r} vs gold {gold!r}: {result}"
    assert result.reward == (1.0 if expected else 0.0)


def test_policy_through_worker_pool_matches_in_process():
    golds = [g for g, _, _, _ in CASES]
    completions = [c for _, c, _, _ in CASES]
    pooled = verify_batch(completions, golds, workers=2, timeout_s=10)
    assert [r.correct for r in pooled] == [e for _, _, e, _ in CASES]


def test_verify_works_off_the_main_thread():
    # math-verify's signal.alarm timeouts fail in threads (its issues #11, #50): ours must not care
    from concurrent.futures import ThreadPoolExecutor

    from verifiers.math import verify

    with ThreadPoolExecutor(4) as threads:
        results = list(threads.map(lambda g: verify(f"so \\boxed{{{g}}}", g), ["1", "\\frac12", "x^2", "(1,2)"]))
    assert all(r.correct for r in results)


def test_a_stuck_comparison_is_a_timeout_result_within_the_limit():
    import time

    from verifiers.math import verify_batch

    # expanding a 5-variable 60th power takes minutes: the worker is killed at the deadline
    start = time.monotonic()
    slow, fine = verify_batch(["\\boxed{(a+b+c+d+f)^{60}}", "\\boxed{2}"], ["(f+d+c+b+a)^{60}+1", "2"],
                              timeout_s=1.0, workers=2)
    assert time.monotonic() - start < 1.0 + 1.0 + 1.0  # limit + 1 s, plus a worker start on a fresh pool
    assert (slow.reason, slow.reward, slow.extracted) == ("timeout", 0.0, "(a+b+c+d+f)^{60}")
    assert fine.correct


def test_mismatched_and_mistyped_inputs_are_clear_errors():
    from verifiers.math import verify_batch

    with pytest.raises(ValueError, match="2 completions but 1 golds"):
        verify_batch(["a", "b"], ["1"])
    with pytest.raises(TypeError, match=r"golds\[0\] is int"):
        verify_batch(["\\boxed{1}"], [1])


@pytest.mark.parametrize("gold, completion, expected", [
    # a gold that is a worked solution: its boxes are the answer (several: the list of them)
    ("Hence the domain is $x \\in \\boxed{(2,12) \\cup (12,102)}$.", "\\boxed{(12,102) \\cup (2,12)}", True),
    ("\\(\\boxed{6 \\text{ and } 8}\\)", "\\boxed{6, 8}", True),
    ("\\boxed{1} papers and \\boxed{2} bins", "\\boxed{1, 2}", True),
    ("\\boxed{1} papers and \\boxed{2} bins", "\\boxed{2}", False),
    # a long gold with no box: the answer its final phrase states
    ("We lose 10% then 20%. " * 12 + "Final Answer: The final answer is $28\\%$. I hope it is correct.",
     "\\boxed{28\\%}", True),
    ("We lose 10% then 20%. " * 12 + "Final Answer: The final answer is $28\\%$. I hope it is correct.",
     "\\boxed{72\\%}", False),
])
def test_a_gold_that_is_a_solution_is_read_for_its_answer(gold, completion, expected):
    assert judge(completion, gold).correct is expected


SOLUTION_WITH_STEPS = ("First we count the cases, which gives $\\boxed{5}$ in all for the first part of the problem, "
                       "and then we add the remaining cases, which are many more than before, and check them one by "
                       "one carefully. So the answer is $\\boxed{12}$.")


@pytest.mark.parametrize("gold, completion, expected", [
    # named variables: the same names with the same values, never the values alone
    ("a=3,b=2,c=1", "\\boxed{a=1,b=2,c=3}", False), ("h = -2, k = 3", "\\boxed{h = 3, k = -2}", False),
    ("x=4, y=-2", "\\boxed{x=-2, y=4}", False), ("x=4, y=-2", "\\boxed{(y,x) = (4,-2)}", False),
    ("x = 3", "\\boxed{y = 3}", False), ("y = 2x + 1", "\\boxed{x = 2x + 1}", False),
    ("x=4, y=-2", "\\boxed{y=-2, x=4}", True), ("x=4, y=-2", "\\boxed{(x,y) = (4,-2)}", True),
    # scientific notation keeps every digit; Python's ** is right-associative
    ("8", "\\boxed{7.99999999999999999999999999999e0}", False),
    ("30000", "\\boxed{2.99999999999999999999999999999 \\times 10^{4}}", False),
    ("10000", "\\boxed{1.0000000000000000000000000000001*10**4}", False), ("x^6", "\\boxed{x**3**2}", False),
    # the factor in front of a matrix is a number written out, and its entries stay as written
    ("\\begin{pmatrix}6\\\\12\\end{pmatrix}", "\\boxed{\\binom{4}{2}\\begin{pmatrix}1\\\\2\\end{pmatrix}}", False),
    ("\\begin{pmatrix}6\\\\12\\end{pmatrix}", "\\boxed{3!\\begin{pmatrix}1\\\\2\\end{pmatrix}}", False),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\boxed{2\\begin{pmatrix}\\frac24\\\\1\\end{pmatrix}}", False),
    # hedges inside a closing sentence or a stated answer
    ("4", "Final Answer: The area is $3$ or maybe it is $4$.", False),
    ("4", "Final Answer: The value of x is 3 and the value of y is 4.", False),
    ("4", "Final Answer: The smallest is 3 but the largest is 4", False),
    ("4", "$3$ or $4$ is our answer", False), ("4", "$3$ is the solution and $4$ is the solution", False),
    ("4", "Either $3$ or the solution is $4$.", False), ("8", "The solution is $7$ and the solution is $8$.", False),
    ("3", "Final Answer: $$3$$\n$$4$$", False), ("3", "Final Answer: \\[3\\]\n\\[4\\]", False),
    # a worked-solution gold is its last box; digits never glue across spaces in a time
    (SOLUTION_WITH_STEPS, "\\boxed{5} \\boxed{12}", False), (SOLUTION_WITH_STEPS, "\\boxed{12}", True),
    ("12:00", "\\boxed{1 2:00}", False), ("7:32", "\\boxed{7:3 2}", False),
])
def test_the_recall_rules_open_no_reward_hack(gold, completion, expected):
    """Cases a red-team pass found against the first version of the issue-25 rules."""
    assert judge(completion, gold).correct is expected


def test_deep_python_powers_and_long_closings_stay_fast_and_safe():
    import time

    start = time.monotonic()
    assert judge("\\boxed{y = " + "x**" * 300 + "2}", "y = x").reason == "refused"
    assert judge("Final Answer: the " + " " * 40000 + "is x", "x").reason in ("correct", "wrong")
    assert time.monotonic() - start < 2.0
