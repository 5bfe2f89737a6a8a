"""Rewards: format, DAPO's overlong penalty, the weighted combination and the dynamic-sampling filter, by hand."""

import math

import pytest
import torch

from grpo.algo.rewards import combine, informative_groups, overlong_penalty, think_format


@pytest.mark.parametrize("text, expected", [
    ("<think>\n1 + 2 = 3\n</think>\n\\boxed{3}", 1.0),
    ("  <think>x</think> 3", 1.0),
    ("<think>x</think>", 0.0),  # no answer after the block
    ("<think>x</think>   \n", 0.0),
    ("<think>x", 0.0),  # never closed
    ("\\boxed{3}", 0.0),  # no think block
    ("<think>a</think><think>b</think>3", 0.0),  # two blocks
    ("<think>a<think>b</think>3", 0.0),  # nested opening
    ("<think>a</think>3</think>", 0.0),  # stray closing tag in the answer
    ("3 <think>a</think> 4", 0.0),  # the block is not first
])
def test_think_format(text, expected):
    assert think_format(text) == expected


def test_overlong_penalty_by_hand():
    # L_max = 20, buffer 5: free up to 15 tokens, then (15 - |y|) / 5
    assert overlong_penalty(10, 20, 5) == 0.0
    assert overlong_penalty(15, 20, 5) == 0.0
    assert overlong_penalty(16, 20, 5) == pytest.approx(-0.2, abs=1e-12)
    assert overlong_penalty(18, 20, 5, penalty=0.5) == pytest.approx(-0.3, abs=1e-12)  # 0.5 * (15 - 18) / 5
    assert overlong_penalty(20, 20, 5) == pytest.approx(-1.0, abs=1e-12)
    assert overlong_penalty(25, 20, 5) == -1.0  # never below -penalty
    assert overlong_penalty(20, 20, 0) == 0.0  # off


def test_combine_weights_gate_and_overlong():
    acc, fmt, lengths = [1.0, 1.0, 0.0, float("nan")], [1.0, 0.0, 1.0, 1.0], [4, 4, 19, 4]
    plain = combine(acc, fmt, lengths, accuracy_weight=1.0, format_weight=0.0, format_gate=False,
                    max_new_tokens=20, overlong_buffer=0, overlong_factor=1.0)
    assert plain[:3] == [1.0, 1.0, 0.0] and math.isnan(plain[3])
    # weights 2 and 0.5, gated: the unformatted correct answer earns nothing; 19 tokens cost (15 - 19) / 5 = -0.8
    mixed = combine(acc, fmt, lengths, accuracy_weight=2.0, format_weight=0.5, format_gate=True,
                    max_new_tokens=20, overlong_buffer=5, overlong_factor=1.0)
    assert mixed[:3] == pytest.approx([2.5, 0.0, 0.5 - 0.8], abs=1e-12)


def test_informative_groups():
    rewards = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, float("nan"), 0.0]])
    assert informative_groups(rewards).tolist() == [True, False, False, False]
