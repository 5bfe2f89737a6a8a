"""`python -m grpo.train [--config FILE] [--resume RUN_DIR] [section.key=value ...]`: a recipe's stages in order.

With no argument it runs the embedded default, `configs/tiny.yaml`: a tiny model built from scratch here,
cold-start SFT on the built-in arithmetic task, then GRPO with the math verifier's reward, held-out accuracy
after each stage. The run dir gets the resolved `config.yaml`, `metrics.jsonl`, `samples.jsonl`,
`checkpoints/`, `final/` (Hugging Face format), `summary.json`
({"stages": {"sft": {"heldout_accuracy", "seconds", ...}, "grpo": {...}}}) and, written at the end, `report/`
(report.md and its plots: grpo/report/). The run ends with a short summary: each stage's held-out accuracy, wall
time, and where the report, the model and the next commands are. The stages and how a run resumes:
grpo/pipeline.py.

`--resume RUN_DIR` continues a stopped run: it reads the run's own `config.yaml` (overrides still apply),
skips the stages `summary.json` records as done and continues the one that was interrupted. Without it, a run dir
that already holds a run is refused (`run.overwrite=true` replaces that run: grpo/pipeline.py `fresh_dir`).

Exit codes: 0 done; 2 bad input (config, data, model path, a vLLM engine that cannot start, a run dir in use), refused before anything
is trained where it can be checked first (grpo/pipeline.py `preflight`); 1 stopped while training (NaN/inf losses, a
checkpoint that could not be written, an engine that failed), with the newest checkpoint intact.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import time
from pathlib import Path

from grpo.config import ConfigError, load_config
from grpo.data.jsonl import DataError
from grpo.learner.policy import TrainingStopped
from grpo.pipeline import run
from grpo.report import write_report
from grpo.runs import console
from grpo.rollout.types import EngineError, EngineUnavailable
from grpo.runs.checkpoint import CheckpointError

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML (default: configs/tiny.yaml)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue a stopped run from its config.yaml, summary.json and newest checkpoint")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. sft.steps=100 run.seed=1")
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            if args.config is not None:
                raise ConfigError(f"--config {args.config} with --resume: a resumed run reads its own "
                                  f"{args.resume / 'config.yaml'}; change keys with section.key=value overrides")
            if not (args.resume / "config.yaml").exists():
                raise ConfigError(f"{args.resume}: not a run directory (no config.yaml) to resume")
            config = load_config(args.resume / "config.yaml", [*args.overrides, f"run.dir={args.resume}"])
        else:
            config = load_config(args.config or DEFAULT_RECIPE, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    if not (config.run.verbose or console.user_asked()):
        console.quiet(config.run.path())
    try:
        summary = run(config, resume=args.resume is not None)
    except (DataError, FileNotFoundError, ConfigError, EngineUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingStopped, CheckpointError, EngineError) as e:
        print(f"stopped: {e}\nresume with: python -m grpo.train --resume {config.run.path()}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(closing(summary, config, report(config.run.path()), time.monotonic() - start))
    return 0


def report(run_dir: Path) -> Path | None:
    """The run's report (grpo/report/); a report that cannot be drawn is said, never fails the finished run."""
    try:
        return write_report([run_dir])
    except Exception as e:  # noqa: BLE001 - the run is done and saved; the report is a view of it
        print(f"warning: the report could not be written ({type(e).__name__}: {e}); try python -m grpo.report "
              f"{run_dir}", file=sys.stderr)
        return None


def closing(summary: dict, config, report_path: Path | None, seconds: float) -> str:
    """What the run leaves the terminal with: held-out accuracy per stage and the change, wall time, and where the
    report, the final model and the next commands are."""
    run_dir = config.run.path()
    accuracy = [(s, v["heldout_accuracy"]) for s, v in summary["stages"].items()
                if isinstance(v, dict) and isinstance(v.get("heldout_accuracy"), (int, float))]
    lines = [f"done in {seconds // 60:.0f} min {seconds % 60:.0f} s: {run_dir}"]
    if accuracy:
        change = f" ({100 * (accuracy[-1][1] - accuracy[0][1]):+.1f} points)" if len(accuracy) > 1 else ""
        lines.append("  held-out accuracy  " + " -> ".join(f"{s} {a:.3f}" for s, a in accuracy) + change)
    if report_path is not None:
        lines.append(f"  report             {report_path}")
    if (run_dir / "final").is_dir():
        lines.append(f"  final model        {run_dir / 'final'}")
        lines.append(f"  evaluate           python -m evals.run --run-dir {run_dir} --suite heldout "
                     f"--output-dir {run_dir / 'evals'}")
    lines.append(f"  resume             python -m grpo.train --resume {run_dir}   (a stopped run continues; a done "
                 "one runs only stages added with run.stages=[...])")
    if "tensorboard" in config.run.report_to:
        lines.append(f"  watch              tensorboard --logdir {run_dir / 'tensorboard'}")
    return "\n".join(lines)


def leave(code: int) -> None:
    """Exit (also what tests/distributed_update.py ends with). One of several processes (`accelerate launch`) runs
    the exit handlers, then skips the interpreter's teardown: over gloo a process sometimes aborted there
    (SIGABRT, "terminate called without an active exception": a communication thread still joinable at exit,
    pytorch/pytorch#90549) after its work was done and written. Destroying the process group first made the
    ranks hang instead."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # the engine pool's shutdown, among others
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
