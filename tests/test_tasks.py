"""Built-in arithmetic: deterministic, disjoint splits, correct golds, solutions the verifier accepts."""

import re

import pytest

from grpo.tasks import arithmetic
from verifiers.math import judge


def test_deterministic_per_seed():
    assert arithmetic(50, split="train", seed=1) == arithmetic(50, split="train", seed=1)
    assert arithmetic(50, split="train", seed=1) != arithmetic(50, split="train", seed=2)


def test_heldout_never_overlaps_train_whatever_the_seeds():
    train = {r["problem"] for seed in range(3) for r in arithmetic(3000, split="train", seed=seed)}
    heldout = {r["problem"] for seed in range(3) for r in arithmetic(300, split="heldout", seed=seed)}
    assert not train & heldout


@pytest.mark.parametrize("digits,ops,operators", [(1, 1, "+"), (2, 2, "+-"), (3, 4, "+-*")])
def test_golds_are_the_value_of_the_expression(digits, ops, operators):
    for r in arithmetic(60, split="train", seed=0, digits=digits, ops=ops, operators=operators):
        expression = r["problem"].removeprefix("Compute ").removesuffix(".")
        assert int(r["answer"]) == eval(expression)  # the parentheses make left-to-right explicit
        assert len(re.findall(r"[-+*] \d", expression)) == ops


def test_worked_solutions_verify_and_show_every_step():
    for r in arithmetic(100, split="heldout", seed=0, ops=3):
        assert judge(r["solution"], r["answer"]).correct
        assert r["solution"].count(" = ") == 3 and r["solution"].startswith("<think>\n")


def test_a_too_small_problem_space_is_an_error():
    with pytest.raises(ValueError, match="distinct"):
        arithmetic(10000, split="heldout", seed=0, digits=1, ops=1, operators="+")
