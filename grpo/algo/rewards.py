"""Rewards for GRPO: verifier accuracy, a format reward, DAPO's soft overlong penalty, and the dynamic-sampling
filter. Pure functions of completions and lengths (the verifier call itself lives in the trainer).

Total reward of a completion (weights from `RewardConfig`):

    r = accuracy_weight * accuracy * (format if format_gate else 1)  +  format_weight * format  +  overlong
        + sum_i weight_i * term_i                                   (reward plug-ins, `reward.functions`)

- accuracy: the verifier's reward (1 correct, 0 otherwise; a verifier timeout or error is 0 and logged by
  reason; an infrastructure failure is NaN and its group is dropped from the step, never learned from).
- format (R1's format reward): 1 when the completion is `<think> ... </think>` followed by a non-empty answer,
  with exactly one think block, else 0.
- overlong (DAPO, Yu et al. 2025, eq. 13), with L_max = max_new_tokens and L_buf = overlong_buffer:
      0                                  if |y| <= L_max - L_buf
      ((L_max - L_buf) - |y|) / L_buf    if L_max - L_buf < |y| <= L_max     (falls linearly from 0 to -1)
  times `overlong_penalty`. Off when overlong_buffer is 0.
"""

from __future__ import annotations

import re

import torch

_THINK = re.compile(r"\A\s*<think>(?P<thought>.*?)</think>(?P<answer>.*)\Z", re.DOTALL)


def think_format(text: str) -> float:
    """1.0 for exactly one `<think>...</think>` block at the start followed by a non-empty answer, else 0.0."""
    match = _THINK.match(text)
    if not match or "<think>" in match["thought"] or "<think>" in match["answer"] or "</think>" in match["answer"]:
        return 0.0
    return 1.0 if match["answer"].strip() else 0.0


def overlong_penalty(length: int, max_new_tokens: int, buffer: int, penalty: float = 1.0) -> float:
    """DAPO's soft overlong punishment (eq. 13): 0 up to max_new_tokens - buffer, then linear down to -penalty."""
    if buffer <= 0:
        return 0.0
    free = max_new_tokens - buffer
    if length <= free:
        return 0.0
    return penalty * max(-1.0, (free - length) / buffer)


def combine(accuracy: list[float], formats: list[float], lengths: list[int], *, accuracy_weight: float,
            format_weight: float, format_gate: bool, max_new_tokens: int, overlong_buffer: int,
            overlong_factor: float, extra: list[tuple[float, list[float]]] = ()) -> list[float]:
    """Per-completion total reward (see the module docstring); `extra`: (weight, values) of each plug-in term. A NaN
    accuracy or term stays NaN (an infrastructure failure: the group is dropped)."""
    out = []
    for i, (acc, fmt, length) in enumerate(zip(accuracy, formats, lengths, strict=True)):
        gate = fmt if format_gate else 1.0
        total = accuracy_weight * acc * gate + format_weight * fmt + sum(w * values[i] for w, values in extra)
        out.append(total + overlong_penalty(length, max_new_tokens, overlong_buffer, overlong_factor))
    return out


def informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    """(B, G) rewards -> (B,) bool: groups whose rewards are not all equal (DAPO's dynamic sampling keeps these;
    an all-equal group has zero advantage everywhere and teaches nothing) and hold no NaN."""
    finite = ~torch.isnan(rewards).any(dim=1)
    spread = (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0
    return finite & spread
