"""TensorBoard: one event directory per stage under <run dir>/tensorboard (`tensorboard --logdir RUN_DIR` shows
them as runs `tensorboard/sft`, `tensorboard/grpo`, ...; several run dirs side by side with `--logdir runs`).
Scalars keep their metrics.jsonl names; samples and the config go to the text tab."""

from __future__ import annotations

from pathlib import Path

import yaml

from grpo.runs.sinks import sample_table


class TensorBoardSink:
    def __init__(self, root: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self._writer_class, self.root, self.config = SummaryWriter, root, config
        self.writers: dict = {}
        self.purge: dict[str, int] = {}  # stage -> first step to keep writing from (a resumed or restarted stage)
        root.mkdir(parents=True, exist_ok=True)

    def _writer(self, label: str):
        if label not in self.writers:
            purge = self.purge.get(label.split(".")[0])  # a rewound stage: each of its writers drops what follows
            writer = self._writer_class(str(self.root / label), flush_secs=10, purge_step=purge)
            writer.add_text("config", "```yaml\n" + yaml.safe_dump(self.config, sort_keys=False) + "```", 0)
            self.writers[label] = writer
        return self.writers[label]

    def metrics(self, label: str, step: int, values: dict[str, float]) -> None:
        writer = self._writer(label)
        for key, value in values.items():
            writer.add_scalar(key, value, step)

    def samples(self, label: str, step: int, rows: list[dict]) -> None:
        columns, data = sample_table(rows)
        cell = lambda v: str(v).replace("|", "\\|").replace("\n", "<br>")  # noqa: E731 - markdown table cell
        table = "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                          + ["| " + " | ".join(cell(v) for v in row) + " |" for row in data])
        self._writer(label).add_text(f"samples/{data[0][0] or 'samples'}", table, step)

    def rewind(self, stage: str, step: int) -> None:
        for label in [label for label in self.writers if label.split(".")[0] == stage]:
            self.writers.pop(label).close()
        self.purge[stage] = max(step + 1, 0)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
