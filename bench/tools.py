"""Benchmark: rollouts with the interpreter (rollout.tools: python) against without, and what a GRPO step waits on it.

    python -m bench.tools [--model DIR] [--engine vllm] [--prompts 32] [--group 8] [--tokens 96] [--rounds 3]

The model calls the interpreter: `--model`, or else a cold start built here (configs/tiny_tools.yaml's SFT, 300 steps,
every worked solution calling the interpreter). Both sides sample the same products prompts (held-out problems,
rendered as the recipe renders them), G completions each at temperature 1, with the same engine, each side in its
own process. Tools off, a completion that opens a code block just goes on writing (no result comes back); tools
on, each block runs in the sandbox and its result is appended (grpo/rollout/tools.py). Figures per side: tokens/s
over every token (model and tool), the model's own tokens/s, seconds per rollout, and with tools the calls per
completion and the share of the rollout spent waiting on the sandbox (`tool_share`). Then `--steps` GRPO steps of
the recipe from the same model with tools on: the mean share of a step spent waiting on tools (perf/tool_s over
perf/step_s from metrics.jsonl). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import SideFailed, run_side

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RECIPE = str(Path(__file__).parents[1] / "configs" / "tiny_tools.yaml")


def measure(side: str, args) -> dict:
    import torch

    from grpo.config import PromptConfig, RolloutConfig
    from grpo.data.prompts import render_prompt
    from grpo.data.tasks import products
    from grpo.model import load
    from grpo.rollout import SamplingParams, make_engine

    torch.set_num_threads(args.threads)
    model, tokenizer = load(args.model)
    prompts = [render_prompt(r["problem"], tokenizer, PromptConfig("plain", True))
               for r in products(args.prompts, split="heldout", seed=0, digits=3)]
    engine = make_engine(RolloutConfig(engine=args.engine, tools="python" if side == "on" else "none"), model,
                         tokenizer)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.tokens)
    engine.generate(prompts[:4], 2, sampling, seed=0)  # warm-up
    waited_before = getattr(engine, "tool_seconds", 0.0)
    tokens = own = calls = completions = 0
    seconds = 0.0
    for r in range(args.rounds):
        start = time.perf_counter()
        groups = engine.generate(prompts, args.group, sampling, seed=r + 1)
        seconds += time.perf_counter() - start
        for c in (c for g in groups for c in g.completions):
            completions += 1
            tokens += len(c.token_ids)
            own += sum(c.mask) if c.mask is not None else len(c.token_ids)
            calls += sum(t["role"] == "tool" for t in c.turns or [])
    waited = getattr(engine, "tool_seconds", 0.0) - waited_before
    engine.close()
    return {"tokens_per_s": round(tokens / seconds, 1), "model_tokens_per_s": round(own / seconds, 1),
            "seconds_per_rollout": round(seconds / args.rounds, 3), "tokens": tokens, "model_tokens": own,
            "calls_per_completion": round(calls / completions, 3), "tool_s": round(waited, 3),
            "tool_share": round(waited / seconds, 4)}


def cold_start(workdir: Path) -> str:
    """A tool-calling model: the recipe's SFT, shortened, on solutions that all call the interpreter."""
    run_dir = workdir / "cold_start"
    subprocess.run([sys.executable, "-m", "grpo.train", "--config", RECIPE, f"run.dir={run_dir}", "run.stages=[sft]",
                    "task.tool_solutions=1.0", "sft.steps=300", "sft.eval_every=0", "sft.eval_size=8"], check=True,
                   stdout=subprocess.DEVNULL)
    return str(run_dir / "final")


def step_share(model: str, workdir: Path, args) -> dict:
    """`--steps` GRPO steps of the recipe from `model`, tools on: seconds per step and the share waiting on tools."""
    run_dir = workdir / "grpo"
    subprocess.run([sys.executable, "-m", "grpo.train", "--config", RECIPE, f"run.dir={run_dir}", f"model.path={model}",
                    "run.stages=[grpo]", f"grpo.steps={args.steps}", "grpo.warmup_steps=0", "grpo.eval_every=0",
                    "grpo.eval_size=8", f"grpo.save_every={args.steps}", f"rollout.engine={args.engine}"], check=True,
                   stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "perf/tool_s" in r][1:]  # the first step pays the engine's warm-up
    step_s = sum(r["perf/step_s"] for r in steps) / len(steps)
    tool_s = sum(r["perf/tool_s"] for r in steps) / len(steps)
    return {"steps": len(steps), "step_s": round(step_s, 3), "tool_s": round(tool_s, 3),
            "tool_share_of_step": round(tool_s / step_s, 4),
            "calls_per_completion": round(sum(r["tools/calls_mean"] for r in steps) / len(steps), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model that calls the interpreter (default: a cold start built here)")
    parser.add_argument("--engine", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=9, help="GRPO steps for the step share (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.side, args)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as tmp:
        model = args.model or cold_start(Path(tmp))
        result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "engine": args.engine,
                  "model": args.model or "cold start (300 SFT steps, every solution calls the interpreter)",
                  "prompts": args.prompts, "group": args.group, "max_new_tokens": args.tokens, "rounds": args.rounds}
        for side in ("off", "on"):
            try:
                figures = run_side("bench.tools", ["--side", side, f"--model={model}", *[
                    f"--{k}={getattr(args, k)}" for k in ("engine", "prompts", "group", "tokens", "rounds",
                                                          "threads")]], side)
            except SideFailed as e:
                sys.exit(str(e))
            print(f"tools {side}: {figures}", flush=True)
            result[f"tools_{side}"] = figures
        result["tokens_per_s_on_vs_off"] = round(result["tools_on"]["tokens_per_s"] /
                                                 result["tools_off"]["tokens_per_s"], 3)
        if args.steps:
            result["grpo_step"] = step_share(model, Path(tmp), args)
            print(f"grpo step: {result['grpo_step']}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
