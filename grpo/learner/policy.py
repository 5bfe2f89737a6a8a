"""The policy: the trained model and every piece of state tied to it, with one owner.

A training stage (sft, grpo, the distilled students) builds one `Policy` around its model and calls:
- `update(samples, step)`: GRPO's mu optimizer passes over the rollout batch (grpo/learner/update.py), the LR
  schedule's step, and the non-finite guard (a NaN/inf update is skipped; `limit` of them in a row stop the run);
- `fit(micro, kd)`: one supervised optimizer step (grpo/learner/supervised.py) and the LR schedule's step;
- `sync(engine, timer)`: the learner's weights into a rollout engine (FSDP: gathered first; LoRA: merged; nothing to
  copy when the engine samples from the learner's own module);
- `state(final)` / `load(state, path)`: what a checkpoint holds of it (grpo/runs/checkpoint.py writes it), and back;
- `finish()`: the end of the stage (LoRA adapters merged into the model for good, so later stages get a plain one).

What it owns:
- `model`, the module the stage was given (under LoRA, PEFT injects the adapters into it), and `view`: the main
  process's whole model (the module itself, or under FSDP an unsharded copy it keeps in step: the engine samples
  from it, evaluation runs on it, checkpoints save it);
- the optimizer (AdamW over what trains: under LoRA the adapters alone) and the LR scheduler;
- the LoRA wrapper, and the KL reference (the same network with its adapters off under LoRA, else a frozen copy);
- the accelerate-prepared learner and optimizer on several processes (DDP, FSDP), which the update runs;
- the count of non-finite steps in a row.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from grpo.config import GRPOConfig, SFTConfig
from grpo.learner.lora import (
    AdaptersOff,
    adapter_state_dict,
    base_state_dict,
    describe,
    load_adapter_state_dict,
    merged_state_dict,
    wrap,
)
from grpo.learner.optim import adamw, schedule
from grpo.learner.sharded import full_optimizer_state, full_weights, load_full_optimizer_state
from grpo.learner.supervised import Distillation, train_step
from grpo.learner.team import ONE, Team
from grpo.learner.update import Sample, UpdateSettings, update


class TrainingStopped(RuntimeError):
    """Training cannot go on (e.g. NaN/inf losses); the message says why and what is left on disk."""


@dataclass
class NonFinite:
    """Updates skipped for a NaN/inf loss or gradient norm: each is reported; `limit` in a row (0: never) stop the
    run with a message ending in `advice` (where the newest checkpoint is, what to try)."""

    limit: int = 0
    advice: str = ""
    in_a_row: int = 0

    def after(self, stage: str, step: int, skipped: bool, say) -> None:
        self.in_a_row = self.in_a_row + 1 if skipped else 0
        if skipped:
            say(f"{stage} step {step + 1}: non-finite loss or gradient norm, update skipped ({self.in_a_row} in a row)")
        if self.limit and self.in_a_row >= self.limit:
            raise TrainingStopped(
                f"{stage}: {self.in_a_row} steps in a row had a NaN/inf loss or gradient norm (step {step + 1}; "
                f"{stage}.max_nonfinite_steps={self.limit}); stopped without saving. {self.advice}".rstrip())


class Policy:
    """See the module docstring. `section`: the config keys of the stage's LoRA settings (for messages);
    `reference`: keep a KL reference; `full_model`: FSDP's unsharded copy on the main process; `resume`: a
    checkpoint whose weights `model` already holds (under LoRA its frozen base and adapters are read back from it);
    `keep_adapters`: checkpoints hold LoRA's base and adapters, so a resumed run rebuilds the adapted model (a stage
    that restarts instead of resuming under LoRA, like SFT, saves the merged model only); `say`: where its notices
    go (the run log's, which prints on the main process only)."""

    def __init__(self, model, cfg: SFTConfig | GRPOConfig, *, stage: str, section: str, team: Team = ONE,
                 reference: bool = False, full_model=None, resume: Path | None = None, keep_adapters: bool = True,
                 updates: UpdateSettings | None = None, guard: NonFinite | None = None, say=print):
        self.model, self.stage, self.team, self.updates, self.say = model, stage, team, updates, say
        self.view = full_model if full_model is not None else model
        self.max_grad_norm, self.keep_adapters = cfg.max_grad_norm, keep_adapters
        self.guard = guard or NonFinite()
        self.peft = self._adapters(cfg, section, resume) if cfg.lora.rank else None
        self.optimizer = adamw(model, cfg)  # under LoRA the adapters alone (nothing else requires grad)
        self.scheduler = schedule(self.optimizer, cfg)
        self.reference = None
        if reference:  # under LoRA: the same network with its adapters off, no second copy
            self.reference = (AdaptersOff(self.peft) if self.peft is not None
                              else copy.deepcopy(model).eval().requires_grad_(False))
        self.learner, self.learner_optimizer = model, self.optimizer
        if team.accelerator is not None:  # the scheduler drives the same param_groups through the wrapper
            self.learner, self.learner_optimizer = team.accelerator.prepare(model, self.optimizer)

    def _adapters(self, cfg, section: str, resume: Path | None):
        """LoRA adapters injected into the model (grpo/learner/lora.py); on resume, the frozen weights and the
        adapters come back from the checkpoint. Returns the PEFT wrapper (its adapter switch and state)."""
        if resume is not None and self.keep_adapters:
            self.model.load_state_dict(torch.load(resume / "lora_base.pt", map_location="cpu"))
        peft = wrap(self.model, cfg.lora, section)
        if resume is not None and self.keep_adapters:
            load_adapter_state_dict(peft, torch.load(resume / "lora_adapter.pt", map_location="cpu"))
        self.say(f"{self.stage}: {describe(self.model, cfg.lora)}")
        return peft

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    # -- training ---------------------------------------------------------------------------------------------
    def update(self, samples: list[Sample], step: int) -> dict:
        """GRPO: mu optimizer passes over the whole rollout batch (each process trains on its share), then the LR
        schedule's step; the step's statistics ({} for an empty batch)."""
        stats = update(self.learner, self.learner_optimizer, self.reference, samples,
                       accelerator=self.team.accelerator, **vars(self.updates)) if samples else {}
        self.scheduler.step()
        self.guard.after(self.stage, step, bool(stats.get("optim/skipped_nonfinite", 0)), self.say)
        return stats

    def fit(self, micro: list[dict], kd: Distillation | None = None) -> tuple[float, float, int]:
        """One supervised optimizer step over `micro` batches, then the LR schedule's step: (loss per completion
        token, gradient norm before clipping, non-padding tokens trained on)."""
        self.model.train()
        result = train_step(self.model, self.optimizer, micro, self.max_grad_norm, kd)
        self.scheduler.step()
        return result

    def sync(self, engine, timer) -> None:
        """The learner's weights into `engine` (None: this process has none). Under FSDP every process first takes
        part in gathering the full weights into the main process's copy (timed as `gather`)."""
        if self.team.sharded:
            with timer("gather"):  # a collective: every process, whether it has an engine or not
                full = full_weights(self.learner, self.team.accelerator)
        if engine is None:
            return
        with timer("sync"):
            if self.team.sharded:
                self.view.load_state_dict(full)
            if getattr(engine, "model", None) is not self.view:  # the transformers engine samples from `view` itself
                engine.load_weights(merged_state_dict(self.peft).items() if self.peft is not None
                                    else self.view.state_dict().items())

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state(self, final: bool = False) -> tuple[dict, dict, dict | None]:
        """(trainer state, extra state dicts, weights to save in the model's place or None) for a checkpoint: the
        optimizer (under FSDP gathered whole and keyed by parameter name: every process calls this) and scheduler;
        the KL reference's weights (not in a `final` model); under LoRA the merged weights, plus the frozen base and
        the adapters when `keep_adapters`. The main process gets everything, the others the trainer state only."""
        optimizer = (full_optimizer_state(self.learner, self.optimizer) if self.team.sharded
                     else self.optimizer.state_dict())
        trainer = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                   "nonfinite_in_a_row": self.guard.in_a_row}  # a resumed run stops where the straight one would
        if not self.team.is_main:
            return trainer, {}, None
        extras = {}
        if self.reference is not None and self.peft is None and not final:
            extras["reference"] = self.reference.state_dict()
        if self.peft is not None and self.keep_adapters:  # the merged model to use, and what a resume rebuilds from
            extras.update(lora_base=base_state_dict(self.peft), lora_adapter=adapter_state_dict(self.peft))
        return trainer, extras, merged_state_dict(self.peft) if self.peft is not None else None

    def load(self, state: dict, path: Path) -> None:
        """A checkpoint's optimizer, scheduler and reference back (the model's weights are loaded with the model)."""
        if self.team.sharded:
            load_full_optimizer_state(self.learner, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.guard.in_a_row = state.get("nonfinite_in_a_row", 0)  # checkpoints written before it count from 0
        if self.reference is not None and self.peft is None:
            self.reference.load_state_dict(torch.load(path / "reference.pt", map_location="cpu"))

    def finish(self) -> None:
        """The end of the stage: LoRA adapters merged into the model, which trains whole again in a later stage."""
        if self.peft is not None:
            self.peft.merge_and_unload()  # `model` becomes a plain model again, the adapters merged into it
            self.model.requires_grad_(True)  # PEFT froze the base; a later stage gets a model that trains
            self.peft = None
