"""Reading a config: defaults, then a YAML file, then `section.key=value` overrides, then the checks.

    config = load_config("configs/tiny_sft.yaml", overrides=["sft.steps=50", "run.seed=1"])

An unknown key, a value of the wrong type or an impossible combination raises `ConfigError` naming the key
and the file (or "command line"). The resolved config is saved in the run dir by the caller (`to_yaml`).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from grpo.config.checks import validate
from grpo.config.schema import Config, ConfigError


def _check_type(value, kind, key: str, where: str):
    """`value` converted to `kind` where that is lossless (int -> float), else ConfigError."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__} {value!r}")
        return [_check_type(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(kind):  # a list item that is a section of its own (reward.functions)
        obj = kind()
        _fill(obj, value, f"{key}.", where)
        return obj
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
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:  # not a YAML value (```python, a lone colon): the text as written
        value = text
    nested: dict = {name: value}
    for section in reversed(sections):
        nested = {section: nested}
    _fill(config, nested, "", "command line")


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
