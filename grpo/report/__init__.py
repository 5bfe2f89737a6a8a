"""`python -m grpo.report RUN_DIR [RUN_DIR ...] [--out DIR]`: a training report built from the runs' saved files
only (grpo/report/runs.py): `report.md` with PNG plots beside it (grpo/report/plots.py), several runs overlaid.

The report answers, per run: where did held-out accuracy go in each stage, did reward and the correct fraction
climb, did completions grow or hit the token budget, how far did the policy move (KL, entropy, clip fraction),
do the engine's and the learner's log-probabilities agree, and where do a step's seconds go. With several runs
it lists the config keys whose values differ between them. It reads a run in progress too (what is logged so
far). Written to RUN_DIR/report for one run (what `python -m grpo.train` does at the end of a run) and to --out
(default ./report) for several.
"""

from __future__ import annotations

import json
from pathlib import Path

from grpo.report.plots import plot
from grpo.report.runs import TRAINING, RunData, config_differences, name_runs, read_run


def write_report(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write the report of the runs in `run_dirs` into `out` (default: RUN_DIR/report for one run, ./report for
    several); return the path of report.md. NotARun for a directory without metrics.jsonl. The figures drawn (file,
    title, runs in it) are listed in the report's `figures.json`."""
    runs = [read_run(Path(d)) for d in run_dirs]
    name_runs(runs)
    out = Path(out) if out is not None else (Path(run_dirs[0]) / "report" if len(runs) == 1 else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    figures = plot(runs, out)
    lines = [f"# Training report: {', '.join(r.name for r in runs)}", "",
             "Built by `python -m grpo.report " + " ".join(str(d) for d in run_dirs) + "` from each run's "
             "metrics.jsonl, summary.json and eval/heldout.json.", "", "## Runs", "",
             "| run | held-out accuracy after each stage | change | wall time | run dir |", "|---|---|---|---|---|"]
    lines += [_row(r) for r in runs]
    lines += [f"\n{r.name}: {r.skipped} metrics lines that did not parse were left out" for r in runs if r.skipped]
    evaluated = [r for r in runs if r.evals]
    if evaluated:
        lines += ["", "## The eval stage", "", "| run | model | held-out accuracy |", "|---|---|---|"]
        lines += [f"| {r.name} | {m} | {v['heldout_accuracy']:.3f} |" for r in evaluated for m, v in r.evals.items()]
    if len(runs) > 1:
        differences = config_differences([r.config for r in runs])
        lines += ["", "## Config differences", ""]
        if differences:
            lines += ["| key | " + " | ".join(r.name for r in runs) + " |", "|---" * (len(runs) + 1) + "|"]
            lines += [f"| {k} | " + " | ".join(f"`{v}`" for v in values) + " |" for k, values in differences.items()]
        else:
            lines += ["The runs have the same config (other than where they write)."]
    for file, title, _ in figures:
        lines += ["", f"## {title}", "", f"![{title}]({file})"]
    (out / "figures.json").write_text(json.dumps([{"file": f, "title": t, "runs": r} for f, t, r in figures],
                                                 indent=2))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _row(run: RunData) -> str:
    done = run.summary.get("stages", {})
    accuracy = [(s, v["heldout_accuracy"]) for s, v in done.items() if isinstance(v.get("heldout_accuracy"), float)
                or isinstance(v.get("heldout_accuracy"), int)]
    running = [s for s in run.stages() if s in TRAINING and s not in done]
    cells = " → ".join(f"{s} {a:.3f}" for s, a in accuracy) or "none finished"
    if running:
        cells += f" ({', '.join(running)} not finished)"
    change = f"{100 * (accuracy[-1][1] - accuracy[0][1]):+.1f} points" if len(accuracy) > 1 else ""
    seconds = sum(v.get("seconds", 0) for v in done.values() if isinstance(v.get("seconds"), (int, float)))
    wall = f"{seconds // 60:.0f} min {seconds % 60:.0f} s" if seconds else ""
    return f"| {run.name} | {cells} | {change} | {wall} | {run.dir} |"
