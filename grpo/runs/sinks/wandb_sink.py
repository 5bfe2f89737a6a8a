"""Weights & Biases: one W&B run per training run, with W&B's own environment honoured (WANDB_MODE=offline,
WANDB_API_KEY, WANDB_ENTITY, WANDB_DIR, ...; the project: run.project, else WANDB_PROJECT, else "grpo-reasoner").
Its files go to <run dir>/wandb unless WANDB_DIR says otherwise. The run's id is kept in the run dir's
`trackers.json`, so `--resume` continues the same W&B run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class WandbSink:
    def __init__(self, run_dir: Path, project: str, name: str, config: dict, ids: dict, resume: bool):
        import wandb

        self.wandb = wandb
        # W&B takes our `verifiers` package for the LLM library of that name and suggests Weave at every start
        os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
        run_id = ids.get("wandb", {}).get("id") if resume else None
        run_id = run_id or secrets.token_hex(6)
        self.run = wandb.init(project=project or os.environ.get("WANDB_PROJECT") or "grpo-reasoner", name=name,
                              id=run_id, resume="allow", config=config,
                              dir=None if os.environ.get("WANDB_DIR") else str(run_dir))
        ids["wandb"] = {"id": self.run.id, "project": self.run.project}
        self.labels: set[str] = set()

    def _axis(self, label: str) -> None:
        if label not in self.labels:  # each stage against its own step: stages count from 1 again
            self.run.define_metric(f"{label}/step")
            self.run.define_metric(f"{label}/*", step_metric=f"{label}/step")
            self.labels.add(label)

    def metrics(self, label: str, step: int, values: dict[str, float]) -> None:
        self._axis(label)
        self.run.log({f"{label}/step": step, **{f"{label}/{k}": v for k, v in values.items()}})

    def samples(self, label: str, step: int, rows: list[dict]) -> None:
        from grpo.runs.sinks import sample_table

        self._axis(label)
        columns, data = sample_table(rows)
        self.run.log({f"{label}/step": step,
                      f"{label}/samples/{data[0][0] or 'samples'}": self.wandb.Table(columns=columns, data=data)})

    def rewind(self, stage: str, step: int) -> None:
        """W&B keeps what it was sent; the replayed steps arrive again with the same values."""

    def close(self) -> None:
        self.run.finish()
