"""The pre-filter refuses inputs that would stall the CAS, and lets ordinary answers through."""

import pytest

from verifiers.guard import refusal
from verifiers.math import judge

BOMBS = [
    "9^{9^{9^{9}}}", "2^{2^{2^{2^{2^{2}}}}}", "10^{10^{10}}", "2^{100000000}", "(10^{8})!", "100000!",
    "(2^{64})!", "1" * 1500, "(" * 60 + "1" + ")" * 60, "x" * 3000, "\\binom{10000000000}{5000000}",
    "(3)^{9999999}",
]
SAFE = ["2^{10}", "2^{1000}", "\\frac{1}{2^{99}}", "e^{x^2}", "(n+1)!", "10!", "x^{2}+1", "(2^{10})^{10}", "1.5^{100}",
        "\\binom{10}{3}", "3 \\cdot 10^{8}"]


@pytest.mark.parametrize("answer", BOMBS)
def test_bombs_are_refused(answer):
    assert refusal(answer) is not None


@pytest.mark.parametrize("answer", SAFE)
def test_ordinary_answers_pass(answer):
    assert refusal(answer) is None


@pytest.mark.parametrize("answer", BOMBS)
def test_a_refused_prediction_is_wrong_with_reason(answer):
    result = judge(f"so \\boxed{{{answer}}}", "2")
    assert (result.correct, result.reason, result.reward) == (False, "refused", 0.0)


def test_a_refused_gold_is_reported_as_bad_gold():
    assert judge("\\boxed{2}", "9^{9^{9^{9}}}").reason == "bad_gold"


def test_an_empty_gold_is_reported_as_bad_gold():
    assert judge("\\boxed{2}", "  ").reason == "bad_gold"
