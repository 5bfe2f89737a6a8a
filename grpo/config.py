"""Typed configuration: dataclasses are the single source of truth; YAML keys map 1:1 to fields.

    config = load_config("configs/tiny_sft.yaml", overrides=["sft.steps=50", "run.seed=1"])

An unknown key, a value of the wrong type or an impossible combination raises `ConfigError` naming the key
and the file (or "command line"). The resolved config is saved in the run dir by the caller (`to_yaml`).
Components receive their own section, never the whole config.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STAGES = ("sft",)  # stages this build can run; grpo, generate, filter, distill and eval arrive with their issues


class ConfigError(ValueError):
    """A configuration problem; the message names the key and where it came from."""


@dataclass
class RunConfig:
    name: str = "tiny"
    """run name; the run writes to runs/<name> unless `dir` is set"""
    dir: str = ""
    """where the run writes (config, metrics, samples, checkpoints, final model, summary)"""
    seed: int = 0
    """seeds python, torch and the task generators"""
    stages: list[str] = field(default_factory=lambda: ["sft"])
    """the stages to run, in order"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""

    def path(self) -> Path:
        return Path(self.dir) if self.dir else Path("runs") / self.name


@dataclass
class ModelConfig:
    preset: str = "tiny"
    """a model built from scratch (tiny ~1M, small ~20M parameters) when `path` is empty"""
    path: str = ""
    """a local directory or hub name of a causal LM (its tokenizer comes from the same place)"""
    dtype: str = "float32"
    """float32 or bfloat16 for the learner's weights"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (saves memory on long sequences)"""
    max_position_embeddings: int = 512
    """context length of a model built from scratch"""


@dataclass
class TaskConfig:
    digits: int = 2
    """largest number of digits of an operand"""
    ops: int = 2
    """operations per problem (each is one step of the worked solution)"""
    operators: str = "+-"
    """the operators to draw from: any of + - *"""
    train_size: int = 20000
    """training problems generated"""
    heldout_size: int = 200
    """held-out problems (never equal to a training problem)"""


@dataclass
class DataConfig:
    source: str = "arithmetic"
    """arithmetic (built-in generator), jsonl, parquet, or hub (a datasets name)"""
    path: str = ""
    """file path, or the hub dataset name"""
    subset: str = ""
    """hub dataset configuration name"""
    split: str = "train"
    """hub split"""
    prompt_field: str = "problem"
    """field holding the question"""
    answer_field: str = "answer"
    """field holding the gold answer"""
    answer_format: str = "plain"
    """plain, gsm8k (the number after ####) or boxed (the last \\boxed{} of the field)"""
    solution_field: str = ""
    """field with a worked solution used as the SFT target (empty: the built-in tasks' own)"""
    max_rows: int = 0
    """read at most this many rows (0: all)"""


@dataclass
class PromptConfig:
    template: str = "r1"
    """plain (the question alone), chat (the tokenizer's chat template) or r1 (chat + the R1 instruction)"""
    think_prefix: bool = True
    """start the completion with "<think>\\n" (part of the prompt, so the model continues its reasoning)"""


@dataclass
class SFTConfig:
    steps: int = 600
    """optimizer steps"""
    batch_size: int = 32
    """sequences per micro-batch"""
    grad_accum: int = 1
    """micro-batches per optimizer step"""
    lr: float = 3e-3
    """peak learning rate (AdamW)"""
    warmup_steps: int = 30
    """linear warmup steps, then cosine decay to min_lr_ratio * lr"""
    min_lr_ratio: float = 0.1
    """final learning rate as a fraction of lr"""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to norms and biases)"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold"""
    max_length: int = 256
    """longest training sequence in tokens (longer ones are counted and dropped)"""
    eval_every: int = 200
    """held-out accuracy every this many steps (0: only at the end)"""
    eval_size: int = 200
    """held-out problems per evaluation"""
    max_new_tokens: int = 160
    """generation budget per held-out problem"""
    save_every: int = 0
    """checkpoint every this many steps (0: only the final model)"""
    log_every: int = 10
    """metrics.jsonl every this many steps"""


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    heldout: DataConfig = field(default_factory=lambda: DataConfig(source=""))
    """held-out data; source "" means the held-out split of `data` (built-in tasks) or none"""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)


def _check_type(value, kind, key: str, where: str):
    """`value` converted to `kind` where that is lossless (int -> float), else ConfigError."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__} {value!r}")
        return [_check_type(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if kind is float and isinstance(value, str):  # YAML reads 3e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {bool: isinstance(value, bool), int: numeric and isinstance(value, int), float: numeric,
          str: isinstance(value, str)}.get(kind, isinstance(value, kind))
    if not ok:
        raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return float(value) if kind is float else value


def _fill(obj, data: dict, prefix: str, where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{where}: unknown key {prefix}{key} (known: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _fill(current, value, f"{prefix}{key}.", where)
        else:
            setattr(obj, key, _check_type(value, hints[key], prefix + key, where))


def _override(config: Config, item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"command line: {item!r} is not key.sub=value")
    *sections, name = key.split(".")
    nested: dict = {name: yaml.safe_load(text) if text.strip() else ""}
    for section in reversed(sections):
        nested = {section: nested}
    _fill(config, nested, "", "command line")


def validate(config: Config, where: str) -> None:
    """Impossible combinations, each named."""
    s, d = config.sft, config.data
    checks = [
        (all(stage in STAGES for stage in config.run.stages), "run.stages",
         f"unknown stage in {config.run.stages}; this build runs {list(STAGES)}"),
        (config.model.path or config.model.preset in ("tiny", "small"), "model.preset",
         f"{config.model.preset!r} is not a preset (tiny, small) and model.path is empty"),
        (config.model.dtype in ("float32", "bfloat16"), "model.dtype", "must be float32 or bfloat16"),
        (d.source in ("arithmetic", "jsonl", "parquet", "hub"), "data.source",
         "must be arithmetic, jsonl, parquet or hub"),
        (d.source == "arithmetic" or d.path, "data.path", f"is required when data.source is {d.source}"),
        (d.source == "arithmetic" or d.solution_field or "sft" not in config.run.stages, "data.solution_field",
         "SFT on file data needs the field holding worked solutions"),
        (d.answer_format in ("plain", "gsm8k", "boxed"), "data.answer_format", "must be plain, gsm8k or boxed"),
        (config.prompt.template in ("plain", "chat", "r1"), "prompt.template", "must be plain, chat or r1"),
        (set(config.task.operators) <= set("+-*") and config.task.operators, "task.operators", "use + - *"),
        (config.task.digits >= 1 and config.task.ops >= 1, "task.digits", "digits and ops must be >= 1"),
        (s.steps >= 1 and s.batch_size >= 1 and s.grad_accum >= 1, "sft.steps", "steps, batch, accum >= 1"),
        (0 <= s.warmup_steps <= s.steps, "sft.warmup_steps", f"must be within 0..sft.steps ({s.steps})"),
        (0.0 <= s.min_lr_ratio <= 1.0 and s.lr > 0, "sft.lr", "lr > 0 and 0 <= min_lr_ratio <= 1"),
        (s.max_length <= config.model.max_position_embeddings or config.model.path, "sft.max_length",
         f"exceeds model.max_position_embeddings ({config.model.max_position_embeddings})"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {key} {message}")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file, then `section.key=value` overrides; validated."""
    config = Config()
    where = str(path) if path else "defaults"
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        _fill(config, data, "", str(path))
    for item in overrides:
        _override(config, item)
    validate(config, where + (" + command line" if overrides else ""))
    return config


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


__all__ = ["Config", "ConfigError", "DataConfig", "ModelConfig", "PromptConfig", "RunConfig", "SFTConfig",
           "TaskConfig", "STAGES", "load_config", "to_dict", "to_yaml"]
