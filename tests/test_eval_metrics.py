"""Evaluation metrics against hand-computed values."""

import math

import pytest

from grpo.algo.passk import bootstrap_se, ks_for, maj_at_k, mcnemar_exact, pass_at_k, suite_metrics
from grpo.stages.evaluate import vote_key


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)  # pass@1 is c / n
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - math.comb(7, 4) / math.comb(10, 4))
    assert pass_at_k(3, 0, 3) == 0.0
    assert pass_at_k(10, 9, 2) == 1.0  # only one wrong sample: any two include a correct one
    assert pass_at_k(64, 16, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)


def test_maj_at_k_by_hand():
    answers, correct = ["2", "3", "3", None], [True, False, False, False]
    assert maj_at_k(answers, correct, 1) == 1.0  # "2" alone
    assert maj_at_k(answers, correct, 2) == 1.0  # "2" and "3" tie: the first seen wins
    assert maj_at_k(answers, correct, 3) == 0.0  # "3" twice
    assert maj_at_k(answers, correct, 4) == 0.0  # no answer does not vote
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    # equal answers written differently are different votes unless the caller normalised them (vote_key)
    assert maj_at_k(["1/2", "0.5", "0.5"], [True, True, True], 3) == 1.0
    # the winner is right when a sample that gave it was judged right (the first "5" also gave a second answer)
    assert maj_at_k(["5", "5", "7"], [False, True, False], 3) == 1.0
    assert vote_key("\\dfrac{1}{2}") == vote_key("\\frac{1}{2}") and vote_key(None) is None


def test_bootstrap_se_is_close_to_the_analytic_one():
    values = [1.0] * 30 + [0.0] * 70  # p = 0.3, n = 100: sqrt(p(1-p)/n) = 0.0458
    assert bootstrap_se(values, samples=4000) == pytest.approx(math.sqrt(0.3 * 0.7 / 100), rel=0.08)
    assert bootstrap_se([1.0]) == 0.0
    assert bootstrap_se([0.5, 0.5, 0.5]) == 0.0


def test_ks_and_suite_metrics():
    assert ks_for(1) == [1] and ks_for(4) == [1, 2, 4] and ks_for(6) == [1, 2, 4, 6] and ks_for(64)[-1] == 64
    problems = [{"correct": [True, False, False, False], "answers": ["1", "2", "2", "3"]},
                {"correct": [True, True, False, False], "answers": ["5", "5", "6", None]}]
    m = suite_metrics(problems)
    assert m["pass@1"] == pytest.approx((0.25 + 0.5) / 2)
    assert m["pass@2"] == pytest.approx(((1 - 3 / 6) + (1 - 1 / 6)) / 2)  # C(3,2)/C(4,2), C(2,2)/C(4,2)
    assert m["pass@4"] == 1.0
    assert m["maj@4"] == pytest.approx(0.5)  # problem 1 votes "2" (wrong), problem 2 votes "5" (right)
    assert set(m) >= {"pass@1_se", "maj@2", "maj@2_se"}
    with pytest.raises(ValueError, match="same number of samples"):
        suite_metrics([{"correct": [True], "answers": ["1"]}, {"correct": [True, False], "answers": ["1", "2"]}])


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # all 5 discordant one way: 2 * (1/2)^5
    assert mcnemar_exact(1, 5) == mcnemar_exact(5, 1) == pytest.approx(2 * (1 + 6) / 64)  # 2 P(X <= 1), n = 6
    assert mcnemar_exact(10, 23) == pytest.approx(0.035082, abs=1e-6)  # the code recipe's SFT vs GRPO

