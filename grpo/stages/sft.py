"""The `sft` stage: supervised fine-tuning on worked solutions (DeepSeek-R1's cold start); also the distilled
students' trainer (grpo/stages/distill.py).

One optimizer step, in order:
1. `grad_accum` micro-batches of `batch_size` sequences, length-bucketed (sequences of similar length share a
   batch, so little padding is computed); with `max_tokens_per_micro_batch` each is cut further to that many
   padded tokens (memory knob; the update does not change);
2. one optimizer step (grpo/learner/policy.py, supervised.py): cross-entropy on completion tokens only (prompt and
   padding masked), summed over the step and divided by the step's completion-token count, so every token weighs
   the same however it is split into micro-batches; gradient clipping at `max_grad_norm`, AdamW (no decay on norms
   and biases), linear warmup then cosine decay to `min_lr_ratio * lr`;
3. every `log_every` steps a metrics.jsonl line;
4. every `eval_every` steps held-out accuracy with the run's verifier (samples to samples.jsonl);
5. every `save_every` steps a checkpoint (written to a temporary directory and renamed, so a crash never leaves a
   half-written one), from which `resume_from` continues exactly.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from grpo.config import SFTConfig
from grpo.learner.policy import Policy
from grpo.learner.supervised import IGNORE, Distillation
from grpo.learner.team import ONE
from grpo.runs.checkpoint import Checkpointer
from grpo.runs.log import RunLog
from grpo.runs.sinks import Sinks
from grpo.rollout.tools import ToolSettings, segments
from grpo.stages.evaluate import EvalPlan, Evaluator
from grpo.stages.judge import Judge


def tokenize(examples, tokenizer, max_length: int,
             tools: ToolSettings | None = None) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(input_ids, labels) pairs with the prompt masked; and how many examples were too long (left out). With
    `tools`, the interpreter's result blocks in a worked solution are tokenised on their own, as a rollout appends
    them, and masked too: the model learns to call the interpreter and use its output, never to write it."""
    out, too_long = [], 0
    for e in examples:
        prompt = tokenizer(e.prompt, add_special_tokens=False)["input_ids"]
        ids, labels = list(prompt), [IGNORE] * len(prompt)
        for is_tool, piece in segments(e.completion, tools) if tools is not None else [(False, e.completion)]:
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            ids += piece_ids
            labels += [IGNORE] * len(piece_ids) if is_tool else piece_ids
        if len(ids) > max_length:
            too_long += 1
            continue
        out.append((ids, labels))
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


def split(batch: list[int], sequences, max_tokens: int) -> list[list[int]]:
    """One batch of indices as micro-batches of at most `max_tokens` padded tokens (rows x the longest row, by
    length; a row over the budget alone); 0: the batch whole. The step's loss is normalised by all its completion
    tokens, so the split does not change the update."""
    if not max_tokens:
        return [batch]
    groups: list[list[int]] = []
    for i in sorted(batch, key=lambda i: len(sequences[i][0])):
        if groups and (len(groups[-1]) + 1) * len(sequences[i][0]) <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


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


class Throughput:
    """Non-padding tokens trained on: in all, and per second since the previous read (a metrics line)."""

    def __init__(self, total: int = 0):
        self.total, self._window, self._since = total, 0, time.monotonic()

    def add(self, tokens: int) -> None:
        self.total += tokens
        self._window += tokens

    def read(self) -> dict:
        rate = self._window / max(time.monotonic() - self._since, 1e-9)
        self._window, self._since = 0, time.monotonic()
        return {"perf/train_tokens_per_s": rate, "perf/train_tokens": self.total}


def run_sft(model, tokenizer, train, heldout, cfg: SFTConfig, run_dir: Path, *, seed: int, judge: Judge,
            stage: str = "sft", section: str = "sft.lora", final: Path | None = None, kd: Distillation | None = None,
            resume_from: Path | None = None, sinks: Sinks | None = None, tools: ToolSettings | None = None) -> dict:
    """Train `model` on `train` examples; return {"heldout_accuracy", "seconds", "steps", ...}. Metrics and
    samples go to the run dir's files tagged with `stage`; the model to `final` (default: <run dir>/final).
    `section`: the config keys of the LoRA settings (`sft.lora`, `distill.sft.lora`); under LoRA a stopped run
    restarts (its checkpoints hold the merged model only). `resume_from`: a checkpoint of this stage whose weights
    `model` already holds; the run continues from its step exactly as if it had not stopped (optimizer, schedule,
    batch order, RNG, logs). `sinks`: the run's trackers, which get every metrics line too. `tools`: the
    held-out evaluation lets the model call the interpreter (the run's rollout.tools)."""
    start = time.monotonic()
    sequences, too_long = tokenize(train, tokenizer, cfg.max_length, tools)
    if not sequences:
        raise ValueError(f"no training example fits sft.max_length={cfg.max_length} ({too_long} too long)")
    stream = batches(sequences, cfg.batch_size, random.Random(seed))
    log = RunLog(run_dir, stage, total=cfg.steps, every=cfg.log_every,
                 show={"loss": ("loss/sft", ".3f"), "tok/s": ("perf/train_tokens_per_s", ".0f")}, sinks=sinks)
    policy = Policy(model, cfg, stage=stage, section=section, keep_adapters=False, say=log.say)
    evaluator = Evaluator(model, tokenizer, heldout, EvalPlan.sft(cfg, tools), judge, log=log, every=cfg.eval_every,
                          total=cfg.steps, n_samples=8)
    ckpt = Checkpointer(run_dir / "checkpoints" / stage, tokenizer, every=cfg.save_every, total=cfg.steps,
                        at_end=True, team=ONE)
    first_step, elapsed_before, tokens_before = 0, 0.0, 0
    if resume_from is not None:
        state = ckpt.restore(resume_from, policy, log)
        first_step, evaluator.evals = state["step"], state["evals"]
        tokens_before, elapsed_before = state["tokens"], state["elapsed"]
        for _ in range(first_step * cfg.grad_accum):  # the batch stream where the stopped run left it
            next(stream)
    meter = Throughput(tokens_before)

    def progress() -> dict:  # the stage's own part of a checkpoint
        return {"evals": evaluator.evals, "tokens": meter.total, "elapsed": elapsed_before + time.monotonic() - start}

    for step in log.steps(first_step):
        done = step + 1
        micro = [collate([sequences[i] for i in group], tokenizer.pad_token_id)            # 1. micro-batches
                 for _ in range(cfg.grad_accum)
                 for group in split(next(stream), sequences, cfg.max_tokens_per_micro_batch)]
        loss, grad_norm, trained = policy.fit(micro, kd)                                   # 2. optimizer step
        meter.add(trained)
        if log.due(done):                                                                  # 3. log
            log.step(done, {"loss/sft": loss, "optim/lr": policy.lr, "optim/grad_norm": grad_norm, **meter.read()})
        evaluator.maybe(done)                                                              # 4. eval
        if done < cfg.steps:                                                               # 5. checkpoint
            ckpt.maybe_save(done, policy, progress)
    accuracy = evaluator.final(cfg.steps)
    ckpt.maybe_save(cfg.steps, policy, progress)  # the last step's, after its evaluation (a resume does not redo it)
    policy.finish()
    final = final or run_dir / "final"
    result = {"heldout_accuracy": accuracy, "seconds": round(elapsed_before + time.monotonic() - start, 1),
              "steps": cfg.steps, "examples": len(sequences), "left_out_too_long": too_long, "tokens": meter.total,
              "evals": evaluator.evals, "final": str(final)}
    ckpt.save(final, cfg.steps, policy, {"result": result}, final=True)
    return result
