"""`python -m grpo.train [--config FILE] [section.key=value ...]`: run a recipe's stages in order.

With no argument it runs the embedded default, `configs/tiny.yaml`: a tiny model built from scratch here,
cold-start SFT on the built-in arithmetic task, held-out accuracy judged by the math verifier. The run dir
gets the resolved `config.yaml`, `metrics.jsonl`, `samples.jsonl`, `final/` (Hugging Face format) and
`summary.json` ({"stages": {"sft": {"heldout_accuracy", "seconds", ...}}}). The GRPO stage arrives with
issue #5.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from grpo.config import Config, ConfigError, load_config, to_yaml
from grpo.data import DataError, load_records, to_examples
from grpo.model import build_model, build_tokenizer, load, parameter_count

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml"


def prepare(config: Config):
    """Seeds, threads, model and tokenizer for a run."""
    random.seed(config.run.seed)
    torch.manual_seed(config.run.seed)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    if config.model.path:
        return load(config.model.path, config.model.dtype)
    tokenizer = build_tokenizer()
    model = build_model(config.model.preset, tokenizer, max_position_embeddings=config.model.max_position_embeddings,
                        seed=config.run.seed)
    return model.to(getattr(torch, config.model.dtype)), tokenizer


def run(config: Config) -> dict:
    run_dir = config.run.path()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(config))
    model, tokenizer = prepare(config)
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    print(f"model: {config.model.path or config.model.preset} ({parameter_count(model) / 1e6:.2f}M parameters), "
          f"run dir: {run_dir}")
    train, report = load_records(config.data, config.task, split="train", seed=config.run.seed)
    heldout_cfg = config.heldout if config.heldout.source else config.data
    heldout, _ = load_records(heldout_cfg, config.task, split="heldout", seed=config.run.seed)
    print(f"data: {report['kept']} training records ({report['left_out']} left out by data.max_rows), "
          f"{len(heldout)} held-out")
    summary = {"run_dir": str(run_dir), "stages": {}}
    for stage in config.run.stages:
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
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_RECIPE, help="recipe YAML (default: configs/tiny.yaml)")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. sft.steps=100 run.seed=1")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        run(config)
    except (DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
