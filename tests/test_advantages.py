"""Advantages by hand (arithmetic in comments), atol=1e-6, rtol=0."""

import math

import pytest
import torch

from grpo.algo.advantages import EPS, advantages


def close(a, b):
    assert torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                          atol=1e-6, rtol=0), (a, b)


def test_group_normalised_uses_bessel_std_and_eps():
    # r = [1, 0, 0, 1]: mean 0.5, centred [.5, -.5, -.5, .5]; Bessel std = sqrt(4 * 0.25 / 3) = 1/sqrt(3)
    a = 0.5 / (1 / math.sqrt(3) + EPS)
    close(advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), "group"), [[a, -a, -a, a]])


def test_batch_std_scaling_keeps_the_group_mean():
    # groups [1, 0] and [1, 1]: centred per group [[.5, -.5], [0, 0]]; std of [1, 0, 1, 1] over the batch:
    # mean .75, squares .0625 + .5625 + .0625 + .0625 = .75, / 3 = .25, std .5
    a = 0.5 / (0.5 + EPS)
    close(advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), "batch"), [[a, -a], [0.0, 0.0]])


def test_dr_grpo_does_not_scale():
    close(advantages(torch.tensor([[3.0, 1.0, 2.0]]), "none"), [[1.0, -1.0, 0.0]])  # mean 2


def test_rloo_is_reward_minus_the_mean_of_the_others():
    # r = [1, 0, 0, 1]: 1 - (0 + 0 + 1) / 3 = 2/3; 0 - (1 + 0 + 1) / 3 = -2/3
    close(advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), "rloo"), [[2 / 3, -2 / 3, -2 / 3, 2 / 3]])


@pytest.mark.parametrize("estimator", ["group", "batch", "none", "rloo"])
def test_equal_rewards_and_groups_of_one_give_zero(estimator):
    close(advantages(torch.tensor([[0.7, 0.7, 0.7], [0.0, 0.0, 0.0]]), estimator), torch.zeros(2, 3))
    close(advantages(torch.tensor([[1.0], [0.0]]), estimator), torch.zeros(2, 1))


@pytest.mark.parametrize("estimator", ["group", "batch", "none", "rloo"])
def test_equal_rewards_whose_float_mean_is_off_give_exactly_zero(estimator):
    # the float32 mean of eight 0.1s is not 0.1: centring alone left -7e-9, and -7e-5 after the group's std + eps
    rewards = torch.tensor([[0.1] * 8, [0.0] * 4 + [1.0] * 4])
    assert rewards[0].mean() != rewards[0, 0]
    out = advantages(rewards, estimator)
    assert torch.equal(out[0], torch.zeros(8))  # exactly: the learner skips completions of advantage 0
    assert (out[1] != 0).all()


def test_shape_is_checked():
    with pytest.raises(ValueError, match=r"\(B, G\)"):
        advantages(torch.tensor([1.0, 0.0]))
