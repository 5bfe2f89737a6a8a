"""The policy loss: pure tensor math, no config, no I/O.

Shapes: N completions in a micro-batch, T completion positions. `logprobs`, `old_logprobs`, `ref_logprobs`,
`engine_logprobs` and `mask` are (N, T); `advantages` is (N,).

Per token (PPO-clip, Schulman et al. 2017, with DAPO's decoupled clip range, Yu et al. 2025):
    w_t = exp(logprob_t - old_logprob_t)                              ("token" ratio)
    w   = exp(sum_t m_t (logprob_t - old_logprob_t) / sum_t m_t)      ("sequence" ratio, GSPO, Zheng et al. 2025)
    L_t = -min(w A, clip(w, 1 - clip_low, 1 + clip_high) A)
  + kl_coef * KL_t with Schulman's k3 estimator KL_t = exp(ref_t - logprob_t) - (ref_t - logprob_t) - 1
    (only when kl_coef > 0; no reference model is needed otherwise)
  x rho_t = min(exp(old_logprob_t - engine_logprob_t), is_cap), detached: truncated importance sampling between
    the engine that sampled and the learner (Yao et al. 2025), when engine logprobs are given.
  x keep_t in {0, 1}, detached, with `is_mask` ("token" or "sequence") and `is_band` (low, high): a token whose
    raw ratio r_t = exp(old_logprob_t - engine_logprob_t) leaves [low, high] ("token", IcePop's masking), or every
    token of a sequence whose geometric-mean ratio exp(sum_t m_t (old_t - engine_t) / sum_t m_t) leaves it
    ("sequence", masked importance sampling), adds nothing to the loss (the step's normaliser is unchanged).
  The statistics report r_t over the loss's tokens: its sum and max, the tokens where the cap bit (r_t > is_cap)
  and the tokens masked, so staleness and engine/learner mismatch are visible before they hurt.

Aggregation, always normalised by the whole optimizer step (not the micro-batch), so the update does not depend
on how the step is split into micro-batches or accumulated (a test checks it):
    "token-mean"            (DAPO):     sum_{i,t} m L / step_tokens
    "seq-mean-token-mean"   (GRPO):     sum_i [ sum_t m L / sum_t m ] / step_sequences
    "constant"              (Dr. GRPO): sum_{i,t} m L / (step_sequences * max_completion_length)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepSize:
    """Counts over the whole optimizer step, for normalisation."""

    tokens: int  # completion tokens (mask sum) in the step
    sequences: int  # completions in the step
    max_completion_length: int  # the generation budget (Dr. GRPO's constant)


def ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """Importance ratio, (N, T): per token, or GSPO's per-sequence geometric mean broadcast over tokens."""
    log_ratio = (logprobs - old_logprobs) * mask
    if level == "token":
        return torch.exp(log_ratio)
    if level == "sequence":
        per_seq = log_ratio.sum(-1) / mask.sum(-1).clamp(min=1)  # (N,)
        return torch.exp(per_seq).unsqueeze(-1).expand_as(logprobs)
    raise ValueError(f"ratio level must be token or sequence, got {level!r}")


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per token: exp(d) - d - 1 with d = ref - logprob (>= 0)."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, step: StepSize) -> torch.Tensor:
    """Reduce (N, T) per-token losses to this micro-batch's share of the step's loss (see the docstring)."""
    masked = per_token * mask
    if mode == "token-mean":
        return masked.sum() / max(step.tokens, 1)
    if mode == "seq-mean-token-mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / max(step.sequences, 1)
    if mode == "constant":
        return masked.sum() / max(step.sequences * step.max_completion_length, 1)
    raise ValueError(f"unknown aggregation {mode!r}")


AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "constant")


def policy_loss(logprobs, old_logprobs, advantages, mask, step: StepSize, *, clip_low: float = 0.2,
                clip_high: float = 0.28, level: str = "token", aggregation: str = "token-mean",
                ref_logprobs=None, kl_coef: float = 0.0, engine_logprobs=None, is_cap: float | None = None,
                is_mask: str = "", is_band: tuple[float, float] = (0.5, 2.0)):
    """(loss, stats): this micro-batch's share of the step loss, and detached statistics (sums, to be added
    over micro-batches and divided by the step's token count: clipped tokens, KL, ratio, the engine/learner ratio;
    `is_max`: a maximum)."""
    mask = mask.to(logprobs.dtype)
    w = ratio(logprobs, old_logprobs, mask, level)  # (N, T)
    a = advantages.unsqueeze(-1)  # (N, 1)
    unclipped = w * a
    clipped = torch.clamp(w, 1 - clip_low, 1 + clip_high) * a
    per_token = -torch.minimum(unclipped, clipped)  # (N, T)
    raw = torch.exp(old_logprobs - engine_logprobs).detach() if engine_logprobs is not None else None
    if raw is not None and is_cap is not None:
        per_token = per_token * raw.clamp(max=is_cap)
    keep = mask
    if is_mask:
        if raw is None:
            raise ValueError("is_mask needs the engine's logprobs")
        keep = mask * band_mask(old_logprobs.detach(), engine_logprobs, mask, is_mask, is_band)
        per_token = per_token * keep
    kl = None
    if kl_coef > 0:  # 0 outside the mask: a prompt or padding position never overflows exp() into the loss
        on = mask > 0
        kl = k3_kl(torch.where(on, logprobs, 0.0), torch.where(on, ref_logprobs, 0.0))
        per_token = per_token + kl_coef * kl
    loss = aggregate(per_token, mask, aggregation, step)
    with torch.no_grad():
        was_clipped = (clipped < unclipped).to(mask.dtype) * keep  # the clipped branch is the one taken
        stats = {"clipped_tokens": float(was_clipped.sum()), "ratio_sum": float((w * mask).sum()),
                 "kl_sum": float((kl * mask).sum()) if kl is not None else 0.0, "tokens": float(mask.sum()),
                 "is_sum": 0.0, "is_max": 0.0, "is_capped": 0.0, "is_masked": float((mask - keep).sum())}
        if raw is not None:
            on = mask > 0
            stats.update(is_sum=float((raw * mask).sum()), is_max=float(raw[on].max()) if on.any() else 0.0,
                         is_capped=float(((raw > is_cap) & on).sum()) if is_cap is not None else 0.0)
    return loss, stats


def band_mask(old_logprobs, engine_logprobs, mask, level: str, band: tuple[float, float]) -> torch.Tensor:
    """(N, T) 1.0 where the engine/learner ratio is inside `band` = (low, high), per token or per sequence (its
    geometric mean over the masked tokens, broadcast); 0.0 outside."""
    low, high = band
    log_ratio = (old_logprobs - engine_logprobs) * mask
    if level == "token":
        r = torch.exp(log_ratio)
    elif level == "sequence":
        r = torch.exp(log_ratio.sum(-1) / mask.sum(-1).clamp(min=1)).unsqueeze(-1).expand_as(mask)
    else:
        raise ValueError(f"is_mask must be token or sequence, got {level!r}")
    return ((r >= low) & (r <= high)).to(mask.dtype)
