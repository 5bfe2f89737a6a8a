"""Benchmark: GRPO steps per second with the vLLM server engine, synchronous against `rollout.max_lag` 1 and 2, one run.

    python -m bench.async_grpo [--model tiny|small] [--steps 8] [--lags 0,1,2] [--settings default,rollout-heavy]
                               [--extra grpo.pack=true ...] [--server-args=--no-enforce-eager]

Every side runs `python -m grpo.train run.stages=[grpo]` from the same freshly initialised model (the `--model`
preset, saved once) against a fresh `python -m grpo.serve` process, with `grpo.is_cap: 2.0` on every side (the
correction a lag needs, so the sides differ in the lag only). Core layout on this 2-core machine:
- lag 0 (synchronous): the server's vLLM threads on cores 0-1 and the trainer's 2 torch threads on cores 0-1; the
  two take turns, each phase has both cores;
- lag > 0, `--layout split` (default): the server on core 1, the trainer on core 0 (1 thread each), so sampling
  and training overlap; `--layout shared`: the server's one thread on core 1, the trainer's 2 threads on both.
Settings: `default` (the GRPO stage of configs/tiny.yaml: its prompts per step, group size and token budget) and
`rollout-heavy` (16 prompts x G=8, 128 tokens). Figures: seconds per step (mean of perf/step_s after the first two
steps), the phases' seconds, the lag and the engine/learner ratio; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {"default": [], "rollout-heavy": ["grpo.prompts_per_step=16", "grpo.group_size=8",
                                             "rollout.max_new_tokens=128"]}
WARMUP = 2


def model_dir(preset: str, out: Path) -> Path:
    from grpo.model import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_model(preset, tokenizer, seed=0).save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    return out / "model"


LAYOUTS = {  # lagged sides: (server cores, trainer cores, trainer threads)
    "split": ({1}, {0}, 1),  # one core each
    "shared": ({1}, {0, 1}, 2),  # the trainer keeps both cores; vLLM's one thread shares core 1 with it
}


def one_side(model: Path, lag: int, setting: str, steps: int, extra: list[str], out: Path,
             layout: str = "split", server_args: tuple[str, ...] = ()) -> dict:
    from grpo.rollout.server import spawn

    server_cores, trainer_cores, threads = ({0, 1}, {0, 1}, 2) if lag == 0 else LAYOUTS[layout]
    mine = os.sched_getaffinity(0)
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(server_cores)))
    os.sched_setaffinity(0, server_cores)  # inherited by the server and its engine process
    try:
        process, url = spawn(model, "--cpu-kv-cache-gib", "1", *server_args)
    finally:
        os.sched_setaffinity(0, mine)
        os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
    run_dir = out / f"{setting}-lag{lag}"
    command = ["taskset", "-c", ",".join(map(str, sorted(trainer_cores))), sys.executable, "-m", "grpo.train",
               f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={model}", "rollout.engine=server",
               f"rollout.server_url={url}", f"rollout.max_lag={lag}", "grpo.is_cap=2.0", f"grpo.steps={steps}",
               "grpo.eval_every=0", "grpo.eval_size=8", "grpo.save_every=0", "grpo.warmup_steps=0",
               f"run.threads={threads}",
               *SETTINGS[setting], *extra]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    finally:
        process.terminate()
        process.wait(timeout=60)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "perf/step_s" in r and "reward/mean" in r][WARMUP:]
    mean = lambda key: round(statistics.mean(r.get(key, 0.0) for r in rows), 3)  # noqa: E731
    return {"s_per_step": mean("perf/step_s"), "rollout_s": mean("perf/rollout_s"), "verify_s": mean("perf/verify_s"),
            "update_s": mean("perf/update_s"), "sync_s": mean("perf/sync_s"),
            "rollout_wait_s": mean("perf/rollout_wait_s"), "lag": mean("async/lag"),
            "is_weight_max": max((r["is/weight_max"] for r in rows if "is/weight_max" in r), default=0.0), "generated_tokens": mean("perf/generated_tokens"),
            "timed_steps": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", choices=["micro", "tiny", "small"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--lags", default="0,1,2")
    parser.add_argument("--settings", default="default,rollout-heavy")
    parser.add_argument("--extra", nargs="*", default=[], help="more section.key=value overrides for every side")
    parser.add_argument("--layout", choices=list(LAYOUTS), default="split", help="the cores of the lagged sides")
    parser.add_argument("--server-args", default="", help="more `python -m grpo.serve` options for every side's "
                        "server, space-separated (--no-enforce-eager: vLLM compiles its model)")
    args = parser.parse_args()
    result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "model": args.model, "steps": args.steps,
              "extra": args.extra, "layout": args.layout, "server_args": args.server_args}
    with tempfile.TemporaryDirectory() as tmp:
        model = model_dir(args.model, Path(tmp))
        for setting in args.settings.split(","):
            result[setting] = {}
            for lag in map(int, args.lags.split(",")):
                figures = one_side(model, lag, setting, args.steps, args.extra, Path(tmp), args.layout,
                                   tuple(args.server_args.split()))
                result[setting][f"lag{lag}"] = figures
                print(setting, f"lag {lag}", figures, flush=True)
            base = result[setting].get("lag0", {}).get("s_per_step")
            for name, figures in list(result[setting].items()):
                if base and "s_per_step" in figures and name != "lag0":
                    result[setting][f"speedup_{name}"] = round(base / figures["s_per_step"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
