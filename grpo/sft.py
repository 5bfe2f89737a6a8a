"""The `sft` stage: supervised fine-tuning on worked solutions (DeepSeek-R1's cold start).

One optimizer step, in order:
1. `grad_accum` micro-batches of `batch_size` sequences, length-bucketed (sequences of similar length share a
   batch, so little padding is computed);
2. loss = cross-entropy on completion tokens only (prompt and padding are masked), summed over the step and
   divided by the step's completion-token count: every token weighs the same however it is split into
   micro-batches;
3. gradient clipping at `max_grad_norm`, AdamW (no decay on norms and biases), linear warmup then cosine
   decay to `min_lr_ratio * lr`;
4. every `log_every` steps a metrics.jsonl line; every `eval_every` steps held-out accuracy with the math
   verifier (samples to samples.jsonl); every `save_every` steps a checkpoint (written to a temporary
   directory and renamed, so a crash never leaves a half-written one).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from grpo.config import SFTConfig
from grpo.lora import describe, merged_state_dict, wrap
from grpo.model import device_of
from grpo.runfiles import append_jsonl, drop_after, log_heldout, save_checkpoint

IGNORE = -100


def tokenize(examples, tokenizer, max_length: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(input_ids, labels) pairs with the prompt masked; and how many examples were too long (left out)."""
    out, too_long = [], 0
    for e in examples:
        prompt = tokenizer(e.prompt, add_special_tokens=False)["input_ids"]
        completion = tokenizer(e.completion, add_special_tokens=False)["input_ids"]
        if len(prompt) + len(completion) > max_length:
            too_long += 1
            continue
        out.append((prompt + completion, [IGNORE] * len(prompt) + completion))
    return out, too_long


def batches(sequences, batch_size: int, rng: random.Random):
    """An endless stream of index batches: shuffled, then sorted by length within pools of 50 batches."""
    while True:
        order = list(range(len(sequences)))
        rng.shuffle(order)
        pool = batch_size * 50
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: len(sequences[i][0]))
            groups = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            rng.shuffle(groups)
            yield from groups


def collate(items, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)  # (B, T)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def lr_factor(step: int, cfg: SFTConfig) -> float:
    """Linear warmup over warmup_steps, then cosine from 1 to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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


def adamw(model, cfg) -> torch.optim.Optimizer:
    """AdamW with `cfg.lr`, `cfg.weight_decay` (not on norms and biases) and betas (0.9, `cfg.adam_beta2`)."""
    trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters alone
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, cfg.adam_beta2))


def _state(optimizer, scheduler, step: int, **progress) -> dict:
    """A checkpoint's trainer state. The batch order needs no RNG state: a resumed run replays the stream."""
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
            "torch_rng": torch.get_rng_state(), **progress}


def run_sft(model, tokenizer, train, heldout, cfg: SFTConfig, run_dir: Path, *, seed: int,
            think_prefix: bool, stage: str = "sft", final: Path | None = None,
            kd: Distillation | None = None, lora_section: str = "sft", resume_from: Path | None = None) -> dict:
    """Train `model` on `train` examples; return {"heldout_accuracy", "seconds", "steps", ...}. Metrics and
    samples go to the run dir's files tagged with `stage`; the model to `final` (default: <run dir>/final).
    `resume_from`: a checkpoint of this stage whose weights `model` already holds; the run continues from its
    step exactly as if it had not stopped (optimizer, schedule, batch order, RNG, logs)."""
    start = time.monotonic()
    sequences, too_long = tokenize(train, tokenizer, cfg.max_length)
    if not sequences:
        raise ValueError(f"no training example fits sft.max_length={cfg.max_length} ({too_long} too long)")
    rng = random.Random(seed)
    stream = batches(sequences, cfg.batch_size, rng)
    peft_model = wrap(model, cfg.lora, f"{lora_section}.lora") if cfg.lora.rank else None  # injected into `model`
    if peft_model is not None:
        print(f"{stage}: {describe(model, cfg.lora)}")
    optimizer = adamw(model, cfg)  # under LoRA the adapters alone (nothing else requires grad)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
    metrics_path = run_dir / "metrics.jsonl"
    evals: list[dict] = []
    first_step, tokens_seen, elapsed_before = 0, 0, 0.0
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", weights_only=False, map_location="cpu")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_step, evals = state["step"], state["evals"]
        tokens_seen, elapsed_before = state["tokens"], state["elapsed"]
        for _ in range(first_step * cfg.grad_accum):  # the batch stream where the stopped run left it
            next(stream)
        torch.set_rng_state(state["torch_rng"])
        for path in (metrics_path, run_dir / "samples.jsonl"):
            drop_after(path, stage, first_step)
        print(f"{stage}: resumed from {resume_from} at step {first_step}")

    def evaluate(step: int) -> float:
        accuracy = log_heldout(model, tokenizer, heldout[: cfg.eval_size], run_dir, stage=stage, step=step,
                               max_new_tokens=cfg.max_new_tokens, think_prefix=think_prefix, n_samples=8)
        evals.append({"step": step, "heldout_accuracy": accuracy})
        return accuracy

    window_tokens, window_start = 0, time.monotonic()
    progress = tqdm(range(first_step, cfg.steps), desc=stage, unit="step", dynamic_ncols=True, initial=first_step,
                    total=cfg.steps)
    for step in progress:
        model.train()
        micro = [collate([sequences[i] for i in next(stream)], tokenizer.pad_token_id) for _ in range(cfg.grad_accum)]
        loss_value, grad_norm, trained = train_step(model, optimizer, micro, cfg.max_grad_norm, kd)
        scheduler.step()
        tokens_seen += trained
        window_tokens += trained
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            tokens_per_s = window_tokens / max(time.monotonic() - window_start, 1e-9)
            append_jsonl(metrics_path, [{"stage": stage, "step": step + 1, "loss/sft": loss_value,
                                         "optim/lr": scheduler.get_last_lr()[0], "optim/grad_norm": grad_norm,
                                         "perf/tokens_per_s": tokens_per_s, "perf/tokens": tokens_seen}])
            progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_per_s:.0f}")
            window_tokens, window_start = 0, time.monotonic()
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            progress.write(f"{stage} step {step + 1}: held-out accuracy {evaluate(step + 1):.3f}")
        if cfg.save_every and (step + 1) % cfg.save_every == 0:
            save_checkpoint(run_dir / "checkpoints" / stage / f"step_{step + 1}", model, tokenizer,
                            _state(optimizer, scheduler, step + 1, evals=evals, tokens=tokens_seen,
                                   elapsed=elapsed_before + time.monotonic() - start),
                            weights=merged_state_dict(peft_model) if peft_model is not None else None)
    progress.close()
    accuracy = evaluate(cfg.steps)
    if peft_model is not None:
        peft_model.merge_and_unload()  # `model` is a plain model again, the adapters merged into its weights
        model.requires_grad_(True)  # PEFT froze the base; a later stage (grpo) trains every weight
    final = final or run_dir / "final"
    save_checkpoint(final, model, tokenizer, _state(optimizer, scheduler, cfg.steps))
    return {"heldout_accuracy": accuracy, "seconds": round(elapsed_before + time.monotonic() - start, 1),
            "steps": cfg.steps,
            "examples": len(sequences), "left_out_too_long": too_long, "tokens": tokens_seen,
            "evals": evals, "final": str(final)}
