"""`python -m grpo.train [--config FILE] [--resume RUN_DIR] [section.key=value ...]`: a recipe's stages in order.

With no argument it runs the embedded default, `configs/tiny.yaml`: a tiny model built from scratch here,
cold-start SFT on the built-in arithmetic task, then GRPO with the math verifier's reward, held-out accuracy
after each stage. The run dir gets the resolved `config.yaml`, `metrics.jsonl`, `samples.jsonl`,
`checkpoints/`, `final/` (Hugging Face format) and `summary.json`
({"stages": {"sft": {"heldout_accuracy", "seconds", ...}, "grpo": {...}}}).

`--resume RUN_DIR` continues a stopped run: it reads the run's own `config.yaml` (overrides still apply),
skips the stages `summary.json` records as done, and continues GRPO from its newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from grpo.config import Config, ConfigError, load_config, to_yaml
from grpo.data import DataError, load_records, to_examples
from grpo.model import build_model, build_tokenizer, load, parameter_count
from grpo.runfiles import CheckpointError, drop_after, latest_checkpoint, write_atomic
from grpo.trainer import CHECKPOINTS, TrainingStopped

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml"


def prepare(config: Config, start_from: Path | None = None):
    """Seeds, threads, model and tokenizer for a run (from `start_from` when resuming)."""
    random.seed(config.run.seed)
    torch.manual_seed(config.run.seed)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    if start_from is not None:
        return load(str(start_from), config.model.dtype)
    if config.model.path:
        return load(config.model.path, config.model.dtype)
    tokenizer = build_tokenizer()
    model = build_model(config.model.preset, tokenizer, max_position_embeddings=config.model.max_position_embeddings,
                        seed=config.run.seed)
    return model.to(getattr(torch, config.model.dtype)), tokenizer


def _resume_point(run_dir: Path, stages: list[str]) -> tuple[dict, Path | None, Path | None]:
    """(summary so far, model directory to start from, GRPO checkpoint to continue) of a stopped run."""
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"stages": {}}
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS) if "grpo" not in summary["stages"] else None
    if checkpoint is not None:
        return summary, checkpoint, checkpoint
    done = [s for s in stages if s in summary["stages"]]
    return summary, (run_dir / "final" if done else None), None


def check_context(config: Config, model, tokenizer, examples) -> None:
    """The longest prompt plus rollout.max_new_tokens must fit the engine's context."""
    context = config.rollout.max_model_len or model.config.max_position_embeddings
    prompts = [e.prompt for e in examples]
    longest = max((len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]), default=0)
    budget = max(config.rollout.max_new_tokens, config.grpo.eval_max_new_tokens)
    if longest + budget > context:
        raise ConfigError(f"rollout.max_new_tokens / grpo.eval_max_new_tokens ({budget}) plus the longest prompt "
                          f"({longest} tokens) exceed the context of {config.model.path or config.model.preset} "
                          f"({context} tokens{', rollout.max_model_len' if config.rollout.max_model_len else ''})")


def distributed(config: Config):
    """An `accelerate.Accelerator` when launched as several processes (`accelerate launch`), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if "sft" in config.run.stages:
        raise ConfigError("run.stages: the sft stage runs in one process; run it first, then GRPO under "
                          "accelerate launch with model.path set to its final/ model")
    g = config.grpo
    if (g.prompts_per_step * g.group_size) % world:
        raise ConfigError(f"grpo.prompts_per_step x grpo.group_size ({g.prompts_per_step * g.group_size}) must be "
                          f"a multiple of the number of processes ({world})")
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[InitProcessGroupKwargs(
        timeout=timedelta(seconds=config.run.collective_timeout_s))])
    if accelerator.distributed_type.name not in ("MULTI_CPU", "MULTI_GPU"):
        raise ConfigError(f"the GRPO trainer runs on DDP (accelerate configs/accelerate/ddp.yaml); "
                          f"{accelerator.distributed_type.name} is supported by the learner only so far")
    return accelerator


def run(config: Config, *, resume: bool = False) -> dict:
    accelerator = distributed(config)
    is_main = accelerator is None or accelerator.is_main_process
    run_dir = config.run.path()
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_main:
        write_atomic(run_dir / "config.yaml", to_yaml(config))
    summary, start_from, checkpoint = ({"stages": {}}, None, None)
    if resume:
        summary, start_from, checkpoint = _resume_point(run_dir, config.run.stages)
    model, tokenizer = prepare(config, start_from)
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    print(f"model: {config.model.path or config.model.preset} ({parameter_count(model) / 1e6:.2f}M parameters), "
          f"run dir: {run_dir}")
    train, report = load_records(config.data, config.task, split="train", seed=config.run.seed)
    heldout_cfg = config.heldout if config.heldout.source else config.data
    heldout, _ = load_records(heldout_cfg, config.task, split="heldout", seed=config.run.seed)
    print(f"data: {report['kept']} training records ({report['left_out']} left out by data.max_rows), "
          f"{len(heldout)} held-out")
    summary["run_dir"] = str(run_dir)
    for stage in config.run.stages:
        if stage in summary["stages"]:
            print(f"{stage}: already done (summary.json), skipped")
            continue
        if resume and is_main and not (stage == "grpo" and checkpoint is not None):
            for name in ("metrics.jsonl", "samples.jsonl"):  # the stage restarts: forget an interrupted attempt
                drop_after(run_dir / name, stage, -1)
        if stage == "sft":
            from grpo.sft import run_sft

            result = run_sft(model, tokenizer, to_examples(train, tokenizer, config.prompt),
                             to_examples(heldout, tokenizer, config.prompt), config.sft, run_dir,
                             seed=config.run.seed, think_prefix=config.prompt.think_prefix)
            if result["left_out_too_long"]:
                print(f"sft: {result['left_out_too_long']} examples longer than sft.max_length were left out")
            print(f"sft: held-out accuracy {result['heldout_accuracy']:.3f} after {result['steps']} steps "
                  f"({result['seconds']:.0f} s); model saved to {result['final']}")
            summary["stages"]["sft"] = result
        if stage == "grpo":
            from grpo.rollout import make_engine
            from grpo.trainer import run_grpo

            train_examples = to_examples(train, tokenizer, config.prompt)
            heldout_examples = to_examples(heldout, tokenizer, config.prompt)
            check_context(config, model, tokenizer, train_examples + heldout_examples)
            engine = make_engine(config.rollout, model, tokenizer) if is_main else None
            previous = [summary["stages"][s]["heldout_accuracy"] for s in config.run.stages
                        if s in summary["stages"] and s != "grpo"]
            same_heldout = (config.grpo.eval_size == config.sft.eval_size and "sft" in summary["stages"]
                            and config.grpo.eval_temperature == 0)  # SFT evaluates greedy
            try:
                result = run_grpo(model, tokenizer, engine, train_examples, heldout_examples, config.grpo,
                                  config.rollout, config.reward, run_dir, seed=config.run.seed,
                                  think_prefix=config.prompt.think_prefix, resume_from=checkpoint,
                                  start_accuracy=previous[-1] if previous and same_heldout else None,
                                  accelerator=accelerator)
            finally:
                if engine is not None:
                    engine.close()
            if not is_main:
                continue
            start = result["evals"][0]["heldout_accuracy"] if result["evals"] else float("nan")
            print(f"grpo: held-out accuracy {result['heldout_accuracy']:.3f} (from {start:.3f}) after "
                  f"{result['steps']} steps ({result['seconds']:.0f} s); model saved to {result['final']}")
            summary["stages"]["grpo"] = result
        if is_main:
            write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_RECIPE, help="recipe YAML (default: configs/tiny.yaml)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue a stopped run from its config.yaml, summary.json and newest checkpoint")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. sft.steps=100 run.seed=1")
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            if not (args.resume / "config.yaml").exists():
                raise ConfigError(f"{args.resume}: not a run directory (no config.yaml) to resume")
            config = load_config(args.resume / "config.yaml", [*args.overrides, f"run.dir={args.resume}"])
        else:
            config = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        run(config, resume=args.resume is not None)
    except (DataError, FileNotFoundError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingStopped, CheckpointError) as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
