"""The optimizer and learning-rate schedule every training stage uses (SFT, GRPO, the distilled students).

AdamW with weight decay on matrices only (not on norms and biases), betas (0.9, adam_beta2); the schedule is a
linear warmup over `warmup_steps`, then a cosine from 1 to `min_lr_ratio` at the last step (`min_lr_ratio` 1: constant).
"""

from __future__ import annotations

import math

import torch

from grpo.config import GRPOConfig, SFTConfig


def adamw(model, cfg: SFTConfig | GRPOConfig) -> torch.optim.Optimizer:
    """AdamW with `cfg.lr`, `cfg.weight_decay` (not on norms and biases) and betas (0.9, `cfg.adam_beta2`), over the
    parameters that require grad (under LoRA: the adapters alone)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, cfg.adam_beta2))


def lr_factor(step: int, cfg: SFTConfig | GRPOConfig) -> float:
    """Linear warmup over warmup_steps, then cosine from 1 to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def schedule(optimizer, cfg: SFTConfig | GRPOConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """The stage's learning-rate schedule over `optimizer` (`lr_factor` times the peak rate)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
