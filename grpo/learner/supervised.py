"""How the supervised learner updates (the cold start, the distilled students): one optimizer step of the
cross-entropy on completion tokens, optionally mixed with the KL to a teacher's token distribution.

The loss is summed over the step's micro-batches and divided by the step's completion-token count, so every token
weighs the same however the step is split; prompt and padding positions carry the label IGNORE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo.model import device_of

IGNORE = -100


def forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(..., V) logits -> (...) KL(teacher || student) per position, both softened by `temperature`:
    sum_v p_t(v) (log p_t(v) - log p_s(v)). Forward KL: the student is pulled to cover the teacher's mass."""
    log_s = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    log_t = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=-1)


@dataclass
class Distillation:
    """Logit distillation in the SFT loss: per completion token,
    (1 - coef) * cross-entropy + coef * temperature^2 * KL(teacher || student) (Hinton et al. 2015's scaling)."""
    teacher: torch.nn.Module
    coef: float
    temperature: float = 1.0


def token_losses(model, batch, kd: Distillation | None = None) -> tuple[torch.Tensor, int]:
    """(sum of completion-token losses, number of completion tokens) for one micro-batch: cross-entropy, mixed
    with the KL to a teacher's distribution when `kd` is given. The batch moves to the model's device."""
    batch = {k: v.to(device_of(model)) for k, v in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    targets = batch["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                                             ignore_index=IGNORE, reduction="sum")
    if kd is not None:
        with torch.no_grad():
            teacher = kd.teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        vocab = min(logits.shape[-1], teacher.shape[-1])  # a model may pad its vocabulary past the tokenizer's
        kl = forward_kl(logits[:, :-1, :vocab], teacher[:, :-1, :vocab], kd.temperature)  # (B, T-1)
        kl_sum = (kl * (targets != IGNORE)).sum()
        loss = (1 - kd.coef) * loss + kd.coef * kd.temperature ** 2 * kl_sum
    return loss, int((targets != IGNORE).sum())


def train_step(model, optimizer, micro: list[dict], max_grad_norm: float,
               kd: Distillation | None = None) -> tuple[float, float, int]:
    """One optimizer step over `micro` batches: (loss per completion token, grad norm before clipping,
    non-padding tokens trained on). The loss is normalised by the whole step's completion tokens."""
    n_tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro)
    loss_sum = 0.0
    for batch in micro:
        loss, _ = token_losses(model, batch, kd)
        (loss / n_tokens).backward()
        loss_sum += loss.item()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / n_tokens, float(grad_norm), sum(int(b["attention_mask"].sum()) for b in micro)
