"""Benchmark: the default recipe's GRPO stage with and without running zero-advantage completions, one run.

    python -m bench.zero_advantage [--sft DIR] [--out DIR] [--extra grpo.steps=50 ...]

A completion whose advantage is 0 (every reward of its group equal) adds exactly nothing to the policy-loss
gradient; `grpo.skip_zero_advantage: true` (the default) does not run it through the learner. This runs the
default recipe's cold start once (`python -m grpo.train run.stages=[sft]`, or reuses `--sft`, a run directory with
`final/`), then its GRPO stage twice from that model, `grpo.skip_zero_advantage` false and true, one after the other,
nothing else on the machine. Both runs sample the same completions while their weights agree (the same seeds); the
skipped completions change only the order of float sums, so the runs drift apart slowly, as two runs of different
micro-batch sizes would. Figures per side: seconds per step and in the update (means over the steps after the
first two), the share of completions skipped and of groups with equal rewards, held-out accuracy at each evaluation;
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP = 2


def train(run_dir: Path, *overrides: str) -> None:
    done = subprocess.run([sys.executable, "-m", "grpo.train", f"run.dir={run_dir}", *overrides],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m grpo.train {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")


def figures(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r.get("stage") == "grpo" and "perf/step_s" in r and "reward/mean" in r]
    timed = steps[WARMUP:]
    mean = lambda key: round(statistics.mean(r.get(key, 0.0) for r in timed), 3)  # noqa: E731
    evals = json.loads((run_dir / "summary.json").read_text())["stages"]["grpo"].get("evals", [])
    return {"steps": len(steps), "s_per_step": mean("perf/step_s"), "update_s": mean("perf/update_s"),
            "rollout_s": mean("perf/rollout_s"), "skipped_frac": mean("optim/zero_advantage_skipped"),
            "zero_std_frac": mean("reward/zero_std_frac"), "reward": mean("reward/mean"),
            "heldout": {e["step"]: e["heldout_accuracy"] for e in evals}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft", type=Path, help="a cold-start run directory to start from (default: run one)")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary directory)")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for both GRPO runs, e.g. grpo.steps=50")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        sft = args.sft
        if sft is None:
            sft = out / "sft"
            train(sft, "run.stages=[sft]")
            print(f"cold start: {sft}", flush=True)
        result = {"sft": str(sft), "extra": args.extra}
        for skip in ("false", "true"):
            run_dir = out / f"skip-{skip}"
            train(run_dir, "run.stages=[grpo]", f"model.path={sft / 'final'}", f"grpo.skip_zero_advantage={skip}",
                  *args.extra)
            result[f"skip_{skip}"] = figures(run_dir)
            print(f"grpo.skip_zero_advantage={skip}: {result[f'skip_{skip}']}", flush=True)
        result["speedup_step"] = round(result["skip_false"]["s_per_step"] / result["skip_true"]["s_per_step"], 2)
        result["speedup_update"] = round(result["skip_false"]["update_s"] / result["skip_true"]["update_s"], 2)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
