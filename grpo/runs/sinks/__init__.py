"""Where a run's metrics go besides `metrics.jsonl`, which stays the source of truth: the trackers named in
`run.report_to` (tensorboard, wandb, trackio). `Sinks` fans every call out to them; only the main process opens
any.

What each tracker gets:
- every metrics line, each number as `<stage>/<key>` at the stage's own step (stages count their steps from 1, so
  W&B, which wants one increasing step per run, plots each stage against its own `<stage>/step`); a line tagged
  with a string (the eval stage's `model`) goes under `<stage>.<tag>`, e.g. `eval.final/eval/heldout_accuracy`;
- a few samples per log (`MAX_SAMPLES`, prompt, completion, gold, reward, verdict) as a table (W&B, Trackio) or a
  markdown table in TensorBoard's text tab;
- the resolved config as the run's hyperparameters (TensorBoard: as text).

A tracker that fails (no network, a quota, a full disk) never stops training: its first exception is reported in
one line and it gets nothing more; metrics.jsonl and the other trackers go on. A tracker named but not installed
is refused before anything trains (`check`), with the extra that installs it.

Resume: W&B continues the same run (its id is kept in the run dir's `trackers.json`) and Trackio the run of the
same name; both receive the steps replayed after the checkpoint again (the same values: resume is exact).
TensorBoard drops the stage's points after the checkpoint instead (`purge_step`).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

from grpo.runs.files import write_atomic

NAMES = ("tensorboard", "wandb", "trackio")
MAX_SAMPLES = 4  # samples per log sent to the trackers (samples.jsonl keeps them all)
SAMPLE_COLUMNS = ("split", "prompt", "completion", "gold", "reward", "reason")


def check(names: list[str]) -> None:
    """Every tracker in `names` is a known one whose package imports here; else ImportError naming the extra."""
    for name in names:
        if name not in NAMES:
            raise ValueError(f"unknown tracker {name!r}; one of {', '.join(NAMES)}")
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ImportError(f"{name} does not import here ({e}): pip install 'grpo-reasoner[{name}]' (or pip "
                              f"install {name})") from None


def numbers(row: dict) -> tuple[str, dict[str, float]]:
    """(label, metrics) of a metrics line: the label is the stage, with the line's string tags appended
    ("eval.final"); the metrics are its numbers (bools as 0/1), `step` excluded."""
    tags = [v for k, v in row.items() if k not in ("stage", "step") and isinstance(v, str)]
    values = {k: float(v) for k, v in row.items()
              if k not in ("stage", "step") and isinstance(v, (int, float)) and not isinstance(v, str)}
    return ".".join([row["stage"], *tags]), values


def sample_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """(columns, data) of the first MAX_SAMPLES sample rows, one column per SAMPLE_COLUMNS key (blank where a row
    has none)."""
    data = [[r.get(c, "") if not isinstance(r.get(c), float) or math.isfinite(r[c]) else str(r[c])
             for c in SAMPLE_COLUMNS] for r in rows[:MAX_SAMPLES]]
    return list(SAMPLE_COLUMNS), data


class Sinks:
    """The run's trackers: `metrics`, `samples` and `rewind` reach each one that is still working."""

    def __init__(self, sinks: dict | None = None, warn=None):
        self.sinks = dict(sinks or {})
        self.warn = warn or (lambda text: print(text, file=sys.stderr))

    @classmethod
    def open(cls, names: list[str], run_dir: Path, *, project: str, name: str, config: dict, resume: bool,
             warn=None) -> "Sinks":
        """The trackers `names` for the run in `run_dir` (named `name`, in `project`; `config` as its
        hyperparameters). `resume`: continue the tracker runs recorded in `trackers.json`. A tracker that fails to
        start is reported and left out."""
        sinks = cls(warn=warn)
        ids_path = run_dir / "trackers.json"
        ids = json.loads(ids_path.read_text()) if resume and ids_path.exists() else {}
        for tracker in names:
            try:
                sinks.sinks[tracker] = _open(tracker, run_dir, project, name, config, ids, resume)
            except Exception as e:  # noqa: BLE001 - a tracker never stops the run
                sinks._failed(tracker, "start", e)
        if ids:
            write_atomic(ids_path, json.dumps(ids, indent=2))
        return sinks

    def metrics(self, row: dict) -> None:
        """A metrics.jsonl line ({"stage", "step", ...})."""
        label, values = numbers(row)
        if values:
            self._each("log", lambda s: s.metrics(label, row["step"], values))

    def samples(self, rows: list[dict]) -> None:
        """samples.jsonl lines of one stage and step (all share the first row's stage, step and tags)."""
        if rows:
            label, _ = numbers({k: v for k, v in rows[0].items() if k in ("stage", "model")} | {"step": 0})
            self._each("samples", lambda s: s.samples(label, rows[0]["step"], rows))

    def rewind(self, stage: str, step: int) -> None:
        """The stage continues after `step` (-1: from its start); lines after it will come again."""
        self._each("rewind", lambda s: s.rewind(stage, step))

    def close(self) -> None:
        self._each("finish", lambda s: s.close())
        self.sinks = {}

    def _each(self, what: str, call) -> None:
        for name, sink in list(self.sinks.items()):
            try:
                call(sink)
            except Exception as e:  # noqa: BLE001 - a tracker never stops the run
                self._failed(name, what, e)

    def _failed(self, name: str, what: str, error: Exception) -> None:
        self.sinks.pop(name, None)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        self.warn(f"warning: run.report_to {name} failed to {what} ({type(error).__name__}: {message}); it gets "
                  "nothing more from this run, metrics.jsonl and the other trackers go on")


def _open(tracker: str, run_dir: Path, project: str, name: str, config: dict, ids: dict, resume: bool):
    if tracker == "tensorboard":
        from grpo.runs.sinks.tensorboard_sink import TensorBoardSink
        return TensorBoardSink(run_dir / "tensorboard", config)
    if tracker == "wandb":
        from grpo.runs.sinks.wandb_sink import WandbSink
        return WandbSink(run_dir, project, name, config, ids, resume)
    if tracker == "trackio":
        from grpo.runs.sinks.trackio_sink import TrackioSink
        return TrackioSink(project, name, config, resume)
    raise ValueError(f"unknown tracker {tracker!r}; one of {', '.join(NAMES)}")
