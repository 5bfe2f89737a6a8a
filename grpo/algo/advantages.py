"""Group-relative advantages: a pure function of the rewards of each group. Tensors in, tensors out.

rewards: (B, G), the G completions of each of B prompts. Every estimator returns (B, G), one advantage per
completion (broadcast over its tokens by the loss).

- "group"  (GRPO, Shao et al. 2024, eq. 3):  A_i = (r_i - mean(r)) / (std(r) + eps), mean and std over the
  group; std is the Bessel-corrected sample standard deviation (divides by G - 1), as TRL and torch.std do.
- "batch"  (Hu et al., REINFORCE++ / "PPO-lite"): centred per group, scaled by the std of all B*G rewards.
- "none"   (Dr. GRPO, Liu et al. 2025): A_i = r_i - mean(r), no scaling (removes the difficulty bias).
- "rloo"   (Ahmadian et al. 2024): A_i = r_i - mean_{j != i} r_j = G / (G - 1) * (r_i - mean(r)).
eps = 1e-4 (TRL's). Edge cases, all estimators: a group whose rewards are all equal gets 0 everywhere; a group of
one completion gets 0 (there is nothing to compare against).
"""

from __future__ import annotations

import torch

EPS = 1e-4


def _centred(rewards: torch.Tensor) -> torch.Tensor:
    """Each reward minus its group's mean; exactly 0 in a group whose rewards are all equal (the float mean of
    eight rewards of 0.1 is not 0.1, which would leave a spurious advantage)."""
    equal = rewards.amax(dim=1, keepdim=True) == rewards.amin(dim=1, keepdim=True)  # (B, 1)
    return torch.where(equal, 0.0, rewards - rewards.mean(dim=1, keepdim=True))  # (B, G)


def group_normalized(rewards: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    if rewards.shape[1] < 2:
        return torch.zeros_like(rewards)
    std = rewards.std(dim=1, keepdim=True)  # (B, 1), Bessel-corrected
    return _centred(rewards) / (std + eps)


def batch_normalized(rewards: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    if rewards.shape[1] < 2:
        return torch.zeros_like(rewards)
    return _centred(rewards) / (rewards.std() + eps)


def unscaled(rewards: torch.Tensor) -> torch.Tensor:
    return _centred(rewards)


def leave_one_out(rewards: torch.Tensor) -> torch.Tensor:
    g = rewards.shape[1]
    if g < 2:
        return torch.zeros_like(rewards)
    return _centred(rewards) * (g / (g - 1))


ESTIMATORS = {"group": group_normalized, "batch": batch_normalized, "none": unscaled, "rloo": leave_one_out}


def advantages(rewards: torch.Tensor, estimator: str = "group") -> torch.Tensor:
    """(B, G) rewards -> (B, G) advantages by the named estimator (see the module docstring)."""
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be (B, G), got shape {tuple(rewards.shape)}")
    return ESTIMATORS[estimator](rewards.float())
