"""A run directory as the report reads it, from its saved files only: `metrics.jsonl` (the source of truth),
`summary.json` (each finished stage's held-out accuracy and seconds), `eval/heldout.json` (the eval stage's models)
and `config.yaml`. Pure helpers on the lines (series, smoothing, config differences) are here too."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TRAINING = ("sft", "grpo", "distill", "distill_baseline")  # stages whose lines have steps to plot


class NotARun(ValueError):
    """A directory the report cannot read as a run; the message names the directory and what is missing."""


@dataclass
class RunData:
    name: str
    dir: Path
    lines: list[dict]  # metrics.jsonl, in order
    summary: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    evals: dict = field(default_factory=dict)  # eval/heldout.json: model name -> results
    skipped: int = 0  # metrics lines that did not parse (a last line cut short by a kill)

    def stages(self) -> list[str]:
        """The stages with metrics lines, in the order they first appear."""
        return list(dict.fromkeys(r["stage"] for r in self.lines))

    def series(self, stage: str, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of `key` on the stage's lines that have it (numbers only, in step order). Held-out
        accuracy also takes the stage's `evals` from summary.json: a GRPO stage's step 0 is the cold start's
        final measurement, recorded there and not logged again."""
        points = {r["step"]: r[key] for r in self.lines if r["stage"] == stage and _number(r.get(key))}
        if key == "eval/heldout_accuracy":
            done = self.summary.get("stages", {}).get(stage, {})
            evals = done.get("evals", []) if isinstance(done, dict) else []
            points = {e["step"]: e["heldout_accuracy"] for e in evals if _number(e.get("heldout_accuracy"))} | points
        points = sorted(points.items())
        return [s for s, _ in points], [float(v) for _, v in points]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_run(run_dir: Path) -> RunData:
    """The run in `run_dir`; NotARun when it has no metrics.jsonl."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise NotARun(f"{run_dir}: not a run directory (no metrics.jsonl)")
    lines, skipped = [], 0
    for text in metrics.read_text().splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(row, dict) and "stage" in row and "step" in row:
            lines.append(row)
        else:
            skipped += 1
    read = lambda name, parse: parse((run_dir / name).read_text()) if (run_dir / name).is_file() else {}  # noqa: E731
    return RunData(run_dir.resolve().name, run_dir, lines, read("summary.json", json.loads),
                   read("config.yaml", yaml.safe_load) or {}, read("eval/heldout.json", json.loads), skipped)


def name_runs(runs: list[RunData]) -> None:
    """Distinct names: a run dir's name, with its parent's where two runs share one."""
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.dir.resolve().parent.name}/{r.dir.resolve().name}"


def ema(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with debiasing (TensorBoard's smoothing): s_t = w s_{t-1} + (1 - w) x_t from
    s_0 = 0, divided by 1 - w^t, so the first point is x_1 itself. weight 0: the values unchanged."""
    out, s = [], 0.0
    for t, x in enumerate(values, start=1):
        s = weight * s + (1 - weight) * x
        out.append(s / (1 - weight**t) if weight else x)
    return out


def flat(config: dict, prefix: str = "") -> dict[str, object]:
    """A nested config as {"section.key": value}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(configs: list[dict], ignore: tuple[str, ...] = ("run.dir", "run.name")) -> dict[str, list]:
    """{"section.key": [value in each config]} for the keys whose values differ between the configs (a key a
    config lacks counts as None); where the runs write (`ignore`) is left out."""
    flats = [flat(c) for c in configs]
    keys = sorted({k for f in flats for k in f} - set(ignore))
    return {k: [f.get(k) for f in flats] for k in keys if len({json.dumps(f.get(k)) for f in flats}) > 1}
