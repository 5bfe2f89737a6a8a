"""`python -m grpo.train [--config FILE] [--resume RUN_DIR] [section.key=value ...]`: a recipe's stages in order.

With no argument it runs the embedded default, `configs/tiny.yaml`: a tiny model built from scratch here,
cold-start SFT on the built-in arithmetic task, then GRPO with the math verifier's reward, held-out accuracy
after each stage. The run dir gets the resolved `config.yaml`, `metrics.jsonl`, `samples.jsonl`,
`checkpoints/`, `final/` (Hugging Face format) and `summary.json`
({"stages": {"sft": {"heldout_accuracy", "seconds", ...}, "grpo": {...}}}). The stages and how a run resumes:
grpo/pipeline.py.

`--resume RUN_DIR` continues a stopped run: it reads the run's own `config.yaml` (overrides still apply),
skips the stages `summary.json` records as done and continues the one that was interrupted.

Exit codes: 0 done; 2 bad input (config, data, model path, a vLLM engine that cannot start), refused before anything
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
    try:
        run(config, resume=args.resume is not None)
    except (DataError, FileNotFoundError, ConfigError, EngineUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingStopped, CheckpointError, EngineError) as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - start:.0f} s")
    return 0


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
