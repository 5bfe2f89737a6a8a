"""What a training stage shows and writes as it goes: the progress bar, the phase timer, and its lines in the run
dir's `metrics.jsonl` and `samples.jsonl` (each tagged with the stage and step), which also go to the run's
trackers (`sinks`: TensorBoard, W&B, Trackio; grpo/runs/sinks/). Only the main process writes; on the others every
call is a no-op.

The progress bar shows the stage's `show` metrics, the newest held-out accuracy (`heldout`, with the step it was
measured at) and tqdm's elapsed<remaining time.

Timing: a stage that times its phases (GRPO) gets, on each metrics line, `perf/<phase>_s` for every phase timed in
the step and `perf/step_s` for the whole step. A phase that runs after the step's line is written (the checkpoint) is
`carry`-ed: reported, and counted in `perf/step_s`, on the next step's line.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from grpo.runs.files import append_jsonl, drop_after
from grpo.runs.sinks import Sinks


class Timer:
    """Seconds per named phase: `with timer("rollout"): ...` adds the block's wall time to seconds["rollout"]."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start


class RunLog:
    """One stage's log in `run_dir`: a metrics line every `every` steps (and at the last, `total`), readable samples
    with it, the progress bar (showing the `show` metrics), and (`timed`) the per-phase seconds of each step."""

    def __init__(self, run_dir: Path, stage: str, *, total: int, every: int = 1, timed: bool = False,
                 enabled: bool = True, show: dict[str, tuple[str, str]] | None = None, sinks: Sinks | None = None):
        self.metrics_path, self.samples_path = run_dir / "metrics.jsonl", run_dir / "samples.jsonl"
        self.stage, self.total, self.every, self.timed, self.enabled = stage, total, every, timed, enabled
        self.show = show or {}  # progress bar label -> (metric key, format spec)
        self.sinks = sinks if sinks is not None and enabled else Sinks()
        self._heldout = ""  # the newest held-out accuracy, for the progress bar
        self.timer = Timer()
        self._bar = None
        self._carried: dict[str, float] = {}
        self._step_start = time.perf_counter()

    def steps(self, first: int):
        """The stage's steps from `first` (0, or where a resumed run continues) to `total`, with a progress bar; each
        starts a fresh `timer`."""
        self._bar = tqdm(range(first, self.total), desc=self.stage, unit="step", dynamic_ncols=True, initial=first,
                         total=self.total, disable=not self.enabled)
        try:
            for step in self._bar:
                self.timer = Timer()
                self.timer.seconds.update(self._carried)
                self._step_start = time.perf_counter() - sum(self._carried.values())
                self._carried = {}
                yield step
        finally:
            self._bar.close()
            self._bar = None

    def due(self, step: int) -> bool:
        """Is a metrics line written after `step` (counted from 1)?"""
        return step % self.every == 0 or step == self.total

    def step(self, step: int, metrics: dict, samples: list[dict] = ()) -> None:
        """The step's metrics line (with its timings) and `samples` when due; the `show` metrics on the progress bar."""
        if not self.enabled:
            return
        due = self.due(step)
        with self.timer("log") if self.timed else contextlib.nullcontext():
            row = {"stage": self.stage, "step": step, **metrics}
            if due and samples:
                append_jsonl(self.samples_path, samples)
                self.sinks.samples(samples)
        if self.timed:
            row.update({f"perf/{phase}_s": round(s, 4) for phase, s in self.timer.seconds.items()})
            row["perf/step_s"] = round(time.perf_counter() - self._step_start, 4)
        if due:
            append_jsonl(self.metrics_path, [row])
            self.sinks.metrics(row)
        shown = {label: format(row[key], spec) for label, (key, spec) in self.show.items() if key in row}
        if self._heldout:
            shown["heldout"] = self._heldout
        if shown and self._bar is not None:
            self._bar.set_postfix(shown)

    def carry(self, phase: str, seconds: float) -> None:
        """`seconds` of a phase run after the step's line (0: it did not run), reported on the next step's line."""
        if seconds:
            self._carried[phase] = seconds

    def line(self, row: dict) -> None:
        """A metrics line of this stage outside the step's own (a held-out evaluation)."""
        if self.enabled:
            row = {"stage": self.stage, **row}
            append_jsonl(self.metrics_path, [row])
            self.sinks.metrics(row)
            if "eval/heldout_accuracy" in row:
                self._heldout = f"{row['eval/heldout_accuracy']:.3f}@{row['step']}"

    def samples(self, rows: list[dict]) -> None:
        if self.enabled:
            append_jsonl(self.samples_path, rows)
            self.sinks.samples(rows)

    def say(self, text: str) -> None:
        """A line for the person watching (above the progress bar while it runs)."""
        if self.enabled:
            write = tqdm.write if self._bar is not None else print
            write(text)

    def forget_after(self, step: int) -> None:
        """Resuming at `step`: drop this stage's lines logged after it (a last line cut short by a kill included)."""
        if self.enabled:
            for path in (self.metrics_path, self.samples_path):
                drop_after(path, self.stage, step)
            self.sinks.rewind(self.stage, step)
