"""Built-in arithmetic: deterministic, disjoint splits, correct golds, solutions the verifier accepts."""

import re

import pytest

from grpo.data.tasks import arithmetic
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


def _steps(solution: str) -> list[tuple[int, str, int, int]]:
    return [(int(a), op, int(b), int(c)) for a, op, b, c in re.findall(r"(-?\d+) ([-+*]) (\d+) = (-?\d+)", solution)]


def _result(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def test_solution_errors_slip_one_step_of_the_asked_share_and_leave_problems_and_golds_alone():
    clean = arithmetic(4000, split="train", seed=0, digits=2, ops=3, operators="+-*")
    slipped = arithmetic(4000, split="train", seed=0, digits=2, ops=3, operators="+-*", solution_slips=0.3)
    assert [(r["problem"], r["answer"]) for r in slipped] == [(r["problem"], r["answer"]) for r in clean]
    wrong = 0
    for c, s in zip(clean, slipped):
        if s["solution"] == c["solution"]:
            continue
        wrong += 1
        steps = _steps(s["solution"])
        off = [(i, c_ - _result(a, op, b)) for i, (a, op, b, c_) in enumerate(steps)]
        slips = [(i, d) for i, d in off if d]
        assert len(slips) == 1 and 1 <= abs(slips[0][1]) <= 3, s["solution"]  # one step off by 1 to 3
        assert all(steps[i + 1][0] == steps[i][3] for i in range(len(steps) - 1))  # the wrong value carried on
        assert not judge(s["solution"], s["answer"]).correct  # so the boxed answer is wrong
        assert s["solution"].endswith("\\boxed{" + str(steps[-1][3]) + "}")
    assert 0.27 < wrong / len(clean) < 0.33


def test_held_out_solutions_never_slip():
    assert arithmetic(200, split="heldout", seed=0, solution_slips=1.0, sign_errors=1.0,
                      answer_sign_drops=1.0) == arithmetic(200, split="heldout", seed=0)
    assert all(not judge(r["solution"], r["answer"]).correct for r in arithmetic(50, split="train", seed=0,
                                                                               solution_slips=1.0))


def test_sign_errors_drop_the_minus_of_the_asked_share_of_negative_results():
    clean = arithmetic(3000, split="train", seed=0, digits=1, ops=4, operators="+-")
    flawed = arithmetic(3000, split="train", seed=0, digits=1, ops=4, operators="+-", sign_errors=0.6)
    assert [(r["problem"], r["answer"]) for r in flawed] == [(r["problem"], r["answer"]) for r in clean]
    negative = dropped = 0
    for r in flawed:
        steps = _steps(r["solution"])
        assert all(steps[i + 1][0] == steps[i][3] for i in range(len(steps) - 1))  # the wrong value carried on
        for a, op, b, written in steps:
            true = _result(a, op, b)
            assert written in (true, -true)
            negative += true < 0
            dropped += written != true
        if any(written != _result(a, op, b) for a, op, b, written in steps):
            assert not judge(r["solution"], r["answer"]).correct
    assert 0.55 < dropped / negative < 0.65 and negative > 1000


def test_answer_sign_drops_box_the_asked_share_of_negative_answers_without_their_sign_and_keep_the_lines():
    clean = arithmetic(3000, split="train", seed=0, digits=1, ops=4, operators="+-")
    flawed = arithmetic(3000, split="train", seed=0, digits=1, ops=4, operators="+-", answer_sign_drops=0.6)
    assert [(r["problem"], r["answer"]) for r in flawed] == [(r["problem"], r["answer"]) for r in clean]
    negative = dropped = 0
    for c, f in zip(clean, flawed):
        lines, boxed = f["solution"].rsplit("\\boxed{", 1)
        assert lines == c["solution"].rsplit("\\boxed{", 1)[0]  # the think lines stay right
        answer, written = int(c["answer"]), int(boxed.rstrip("}"))
        assert written in (answer, -answer)
        negative += answer < 0
        dropped += written != answer
        assert judge(f["solution"], f["answer"]).correct == (written == answer)
    assert 0.55 < dropped / negative < 0.65 and negative > 900  # about a third of the answers are negative
    # the other flaws draw as before, so adding this one leaves their solutions' lines as they were
    both = arithmetic(300, split="train", seed=0, digits=1, ops=4, operators="+-", sign_errors=0.6,
                      answer_sign_drops=0.6)
    alone = arithmetic(300, split="train", seed=0, digits=1, ops=4, operators="+-", sign_errors=0.6)
    assert [r["solution"].rsplit("\\boxed{", 1)[0] for r in both] == [
        r["solution"].rsplit("\\boxed{", 1)[0] for r in alone]
