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
