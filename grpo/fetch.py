"""`python -m grpo.fetch --config RECIPE [section.key=value ...]`: the models and datasets a recipe names, resolved
exactly as training resolves them (grpo/hub.py: a local directory, or a hub id through the Hugging Face cache).

With network it downloads them into the cache now (so a later run, or a machine without network that shares the
cache, starts at once); with HF_HUB_OFFLINE=1 it checks that they are all there. One line per model and dataset;
exit code 2 with the message of the first one that cannot be found (which case, and what to do).
"""

from __future__ import annotations

import argparse
import sys

from grpo.config import Config, ConfigError, load_config
from grpo.data.jsonl import DataError
from grpo.data.records import load_records
from grpo.hub import NotFound, model_dir


def models(config: Config) -> list[tuple[str, str, str]]:
    """(config key, name, revision) of every model the recipe loads by name."""
    out = [("model.path", config.model.path, config.model.revision)] if config.model.path else []
    if "distill" in config.run.stages and config.distill.student_path:
        out.append(("distill.student_path", config.distill.student_path, config.distill.student_revision))
    return out


def fetch(config: Config) -> list[str]:
    """Resolve (download, or find in the cache) every model and hub dataset of `config`: one line each."""
    lines = [f"{key} {name}: {model_dir(name, revision, key=key)}" for key, name, revision in models(config)]
    for section, split in (("data", "train"), ("heldout", "heldout")):
        cfg = getattr(config, section)
        if cfg.source == "hub":
            _, report = load_records(cfg, config.task, split=split, seed=config.run.seed, section=section)
            lines.append(f"{section}.path {cfg.path} [{cfg.subset or 'default'}/{cfg.split}]: {report['rows']} rows")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the recipe whose models and datasets to fetch")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. model.path=ORG/NAME")
    args = parser.parse_args(argv)
    try:
        for line in fetch(load_config(args.config, args.overrides)):
            print(line, flush=True)
    except (ConfigError, DataError, NotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
