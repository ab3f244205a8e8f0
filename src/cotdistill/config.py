"""Typed configs: dataclasses loaded from YAML, overridden by ``key=value``, saved next to each run.

An unknown key is an error naming the key and the keys allowed there; values are validated by each
dataclass's ``__post_init__``, so an out-of-range value names its key and range.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass inside ``tp``, also through ``X | None``."""
    if _is_dataclass_type(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(tp) if _is_dataclass_type(a)), None)
    return None


def _coerce_float(tp: Any, value: Any, key: str) -> Any:
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; a float field takes it as the number it means."""
    wants_float = tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                                  and float in typing.get_args(tp))
    if wants_float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, path: str = "") -> T:
    """Build ``cls`` from a nested dict, recursing into dataclass fields; unknown keys are errors."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in '{path}'" if path else ""
        raise ConfigError(f"unknown config key{where}: {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_in(hints[name])
        key = f"{path}.{name}" if path else name
        if sub is not None and isinstance(value, dict):
            kwargs[name] = from_dict(sub, value, key)
        else:
            kwargs[name] = _coerce_float(hints[name], value, key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        prefix = f"{path}: " if path else ""
        raise ConfigError(f"{prefix}{err}") from None


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["loss.kind=jsd", "optim.lr=1e-4"]`` → nested dict; values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override must look like key=value, got {item!r}")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return from_dict(cls, merge(data, parse_overrides(overrides or [])))


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(to_dict(config), fh, sort_keys=False)
