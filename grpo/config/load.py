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


class _UniqueKeys(yaml.SafeLoader):
    """YAML that refuses a key written twice in one mapping (PyYAML keeps the last silently: a second `grpo:`
    section would replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: merged, not a key of its own
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in one mapping "
                                  f"(first on line {seen[key] + 1}); the second would replace the first")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _field_type(config: Config, path: list[str]):
    """The declared type of the field at `path` (section names, then the key), or None (not a field: _fill names
    the unknown key)."""
    obj = config
    for section in path[:-1]:
        obj = getattr(obj, section, None)
        if not dataclasses.is_dataclass(obj):
            return None
    return typing.get_type_hints(type(obj)).get(path[-1]) if dataclasses.is_dataclass(obj) else None


def _override(config: Config, item: str) -> None:
    """`section.key=value`: the value read as YAML (a number, a bool, a list), except for a text key, which takes
    the text as written (a run.dir of `runs/exp #2` or `2024-01-01` stays that path); inside a mapping key
    (data.options.name=value) only that entry changes."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"command line: {item!r} is not key.sub=value")
    path = key.split(".")
    quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
    null = text.strip() in ("null", "Null", "NULL", "~")  # still YAML's null (and refused for a text key)
    if _field_type(config, path) is str and not quoted and not null:
        value = text
    else:
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:  # not a YAML value (```python, a lone colon): the text as written
            value = text
    for i in range(1, len(path)):  # a key inside a mapping field: that entry, the others kept
        inside = _field_type(config, path[:i])
        if typing.get_origin(inside) is dict or inside is dict:
            mapping = dict(_get(config, path[:i]))
            entry = mapping
            for part in path[i:-1]:
                entry[part] = dict(entry[part]) if isinstance(entry.get(part), dict) else {}
                entry = entry[part]
            entry[path[-1]] = value
            path, value = path[:i], mapping
            break
    nested: dict = {path[-1]: value}
    for section in reversed(path[:-1]):
        nested = {section: nested}
    _fill(config, nested, "", "command line")


def _get(config: Config, path: list[str]):
    obj = config
    for part in path:
        obj = getattr(obj, part)
    return obj


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file, then `section.key=value` overrides; validated."""
    config = Config()
    where = str(path) if path else "defaults"
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.load(path.read_text(), Loader=_UniqueKeys) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        _fill(config, data, "", str(path))
    for item in overrides:
        _override(config, item)
    validate(config, where + (" + command line" if overrides else ""))
    return config


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
