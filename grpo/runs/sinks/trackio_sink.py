"""Trackio: a local-first tracker (`trackio show` opens its dashboard; TRACKIO_DIR says where its database is). One
Trackio run per training run, named as the run (the project: run.project, else TRACKIO_PROJECT, else
"grpo-reasoner"); `--resume` continues the newest Trackio run of that name."""

from __future__ import annotations

import os


class TrackioSink:
    def __init__(self, project: str, name: str, config: dict, resume: bool):
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=project or os.environ.get("TRACKIO_PROJECT") or "grpo-reasoner", name=name,
                                config=config, resume="allow" if resume else "never", embed=False)

    def metrics(self, label: str, step: int, values: dict[str, float]) -> None:
        self.run.log({f"{label}/{k}": v for k, v in values.items()}, step=step)

    def samples(self, label: str, step: int, rows: list[dict]) -> None:
        from grpo.runs.sinks import sample_table

        columns, data = sample_table(rows)
        self.run.log({f"{label}/samples/{data[0][0] or 'samples'}": self.trackio.Table(columns=columns, data=data)},
                     step=step)

    def rewind(self, stage: str, step: int) -> None:
        """Trackio keeps what it was sent; the replayed steps arrive again with the same values."""

    def close(self) -> None:
        self.run.finish()
