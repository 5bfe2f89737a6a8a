"""The tools recipe against the same task without tools: held-out accuracy with and without the interpreter, and
what GRPO adds over its cold start (paired, exact McNemar), from two full runs.

    python -m bench.tools_recipe [--out runs/tools_compare] [--report docs/tools_report] [--seed 0]

1. configs/tiny_tools.yaml: its cold start (sft), the cold-start model copied aside, then its GRPO (`--resume` with
   the grpo stage added), wall-clocked;
2. configs/tiny_tools_off.yaml, the same way (no interpreter; more GRPO steps, so at least the same wall clock);
3. every final model on the 200 held-out problems, greedy, with the interpreter and without it (the tools recipe's
   own evaluation is the one with it), and each GRPO model against its own cold start on the same problems;
4. `python -m grpo.report` of both runs into `--report`, and results.json there. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).parents[1]
RECIPES = {"tools": ROOT / "configs" / "tiny_tools.yaml", "off": ROOT / "configs" / "tiny_tools_off.yaml"}


def train(name: str, out: Path, seed: int, overrides: list[str]) -> dict:
    """Both stages of one recipe, the cold-start model kept at <run>_sft; seconds per stage."""
    run_dir, seconds = out / name, {}
    for stages in ("[sft]", "[sft,grpo]"):
        fresh = ["--config", str(RECIPES[name]), f"run.dir={run_dir}", f"run.seed={seed}", f"run.stages={stages}",
                 "run.overwrite=true", *overrides]  # the bench's own runs: a rerun replaces them
        args = fresh if stages == "[sft]" else ["--resume", str(run_dir), f"run.stages={stages}"]
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "grpo.train", *args], check=True, stdout=subprocess.DEVNULL)
        seconds["sft" if stages == "[sft]" else "grpo"] = round(time.monotonic() - start, 1)
        if stages == "[sft]":
            shutil.copytree(run_dir / "final", out / f"{name}_sft", dirs_exist_ok=True)
    return seconds


def verdicts(model_dir: Path, recipe: str, tools: bool, seed: int, overrides: list[str]) -> list[bool]:
    """Greedy held-out verdicts of a model under `recipe`'s plan, with or without the interpreter."""
    from grpo.config.load import load_config
    from grpo.data import environments
    from grpo.model import load
    from grpo.rollout.tools import ToolSettings
    from grpo.stages.evaluate import EvalPlan, evaluate_heldout

    config = load_config(RECIPES[recipe], [*overrides, f"run.seed={seed}", "rollout.engine=hf",
                                           f"rollout.tools={'python' if tools else 'none'}"])
    records = environments.heldout(config).records("heldout", seed=seed)
    plan = replace(EvalPlan.of(config, "grpo"), tools=ToolSettings.of(config.rollout))
    model, tokenizer = load(str(model_dir))
    return [s["correct"] for s in evaluate_heldout(model, tokenizer, records, config, plan).last_samples]


def paired(a: list[bool], b: list[bool]) -> dict:
    from grpo.algo.passk import mcnemar_exact

    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    return {"accuracy_a": round(sum(a) / len(a), 4), "accuracy_b": round(sum(b) / len(b), 4), "only_a": only_a,
            "only_b": only_b, "mcnemar_p": mcnemar_exact(only_a, only_b)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/tools_compare")
    parser.add_argument("--report", default="docs/tools_report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="section.key=value for both recipes (a shorter trial run)")
    args = parser.parse_args()
    out = Path(args.out)
    result = {"seed": args.seed, "seconds": {name: train(name, out, args.seed, args.overrides) for name in RECIPES}}
    final = {name: out / name / "final" for name in RECIPES}
    cold = {name: out / f"{name}_sft" for name in RECIPES}
    table = {}
    for name in RECIPES:
        for label, model in (("grpo", final[name]), ("sft", cold[name])):
            for tools in (True, False):
                table[f"{name}_{label}_{'with' if tools else 'without'}_tools"] = verdicts(model, name, tools,
                                                                                           args.seed, args.overrides)
    result["heldout"] = {key: round(sum(v) / len(v), 4) for key, v in table.items()}
    result["grpo_vs_cold_start"] = {  # each recipe as it evaluates itself
        "tools": paired(table["tools_sft_with_tools"], table["tools_grpo_with_tools"]),
        "off": paired(table["off_sft_without_tools"], table["off_grpo_without_tools"])}
    result["tools_vs_off"] = paired(table["off_grpo_without_tools"], table["tools_grpo_with_tools"])
    subprocess.run([sys.executable, "-m", "grpo.report", str(out / "tools"), str(out / "off"), "--out", args.report],
                   check=True, stdout=subprocess.DEVNULL)
    Path(args.report, "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
