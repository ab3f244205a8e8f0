"""Typed configs: dataclasses loaded from YAML, overridden by ``key=value``, saved next to each run.

An unknown key is an error naming the key and the keys allowed there; values are validated by each
dataclass's ``__post_init__``, so an out-of-range value names its key and range.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cotdistill.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config key or value that is not allowed; the message names the key."""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass inside ``tp``, also through ``X | None``."""
    if _is_dataclass_type(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(tp) if _is_dataclass_type(a)), None)
    return None


PLAIN_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a list",
               tuple: "a list", dict: "a mapping", type(None): "null"}


def _type_name(tp: Any) -> str:
    """``int | None`` → "a whole number or null": what a user would type, not Python's spelling."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return PLAIN_NAMES.get(typing.get_origin(tp) or tp, str(tp).replace("typing.", ""))


def check_value(tp: Any, value: Any, key: str) -> Any:
    """``value`` as the field's type ``tp`` wants it, or a :class:`ConfigError` naming the key, the type and what
    was found (``optim.batch_size=2.5`` or ``seed=abc`` failed much later, deep in the trainer). Ints are accepted
    for floats, and strings that YAML 1.1 leaves unparsed (``1e-5``) are read as the number they mean."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return check_value(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {_type_name(tp)}, found {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) != len(args):
                    raise ConfigError(f"{key} must have {len(args)} items, found {len(value)}: {value!r}")
                return tuple(check_value(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
            item = args[0] if args else Any
            checked = [check_value(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
            return tuple(checked) if (origin or tp) is tuple else checked
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
    else:
        return value  # a type this checker does not know: the dataclass's own checks apply
    raise ConfigError(f"{key} must be {_type_name(tp)}, found {value!r} ({type(value).__name__})")


def _field_default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


# a field named ``<section>_config`` next to a dataclass field ``<section>`` names a YAML file whose mapping is that
# section's base (``train_config: train.yaml`` in a sweep): the file a run already has is read, never copied
INCLUDE_SUFFIX = "_config"


def _expand_includes(data: dict[str, Any], fields: dict[str, dataclasses.Field]) -> dict[str, Any]:
    for name in fields:
        section = name[:-len(INCLUDE_SUFFIX)]
        if name.endswith(INCLUDE_SUFFIX) and section in fields and data.get(name):
            included = read_yaml_mapping(data[name])
            given = data.get(section) or {}
            if not isinstance(given, dict):
                continue  # a section given as an object (Python) wins over the file; its own checks apply
            data[section] = merge(included, given)
    return data


def _renamed_keys(cls: type, data: dict[str, Any], path: str) -> dict[str, Any]:
    """A key a class lists in ``DEPRECATED_KEYS`` (old → new, where new may be a dotted path into a section:
    ``eval_limit`` → ``eval.limit``) is read as its new name, with a warning."""
    for old, new in getattr(cls, "DEPRECATED_KEYS", {}).items():
        if old not in data:
            continue
        where = f"{path}." if path else ""
        *sections, last = new.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}{old} is the old name of {where}{new}: set it there")
        if last in node:
            raise ConfigError(f"{where}{old} is the old name of {where}{new}: give only {where}{new}")
        logging.getLogger("cotdistill.config").warning(f"{where}{old} is deprecated: it is now {where}{new}")
        node[last] = data.pop(old)
    return data


def _section_hint(unknown: list[str], fields: dict[str, dataclasses.Field], hints: dict[str, Any]) -> str:
    """Keys that belong to a section (a training config's keys given at the top of a sweep's): say where."""
    for name in fields:
        sub = _dataclass_in(hints[name])
        if sub is not None and set(unknown) <= {f.name for f in dataclasses.fields(sub)}:
            include = f"{name}{INCLUDE_SUFFIX}"
            also = f", or name the file as {include}: FILE (--{include.replace('_', '-')})" if include in fields else ""
            return f"; these are keys of '{name}': put them under {name}:{also}"
    return ""


def _preset_layer(cls: type, section: dict[str, Any]) -> dict[str, Any]:
    """What a named preset in a section (``eval.preset: paper``) sets, from the class's ``preset_layer``: laid over
    the field's default and under the keys given, so a preset fills only what the user left out, and the printed
    config holds its values and reads back unchanged."""
    layer = getattr(cls, "preset_layer", None)
    return layer(section) if layer is not None else {}


def from_dict(cls: type[T], data: dict[str, Any] | None, path: str = "") -> T:
    """Build ``cls`` from a nested dict, recursing into dataclass fields; unknown keys are errors. A section given
    as a dict is laid over that field's own default, so a stage's defaults for a nested config (a selection
    experiment's SFT settings) are written once, in its field, and shown by ``--print-config``."""
    data = _renamed_keys(cls, dict(data or {}), path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in '{path}'" if path else ""
        raise ConfigError(f"unknown config key{where}: {', '.join(unknown)} (allowed: {', '.join(sorted(fields))})"
                          + _section_hint(unknown, fields, hints))
    data = _expand_includes(data, fields)
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_in(hints[name])
        key = f"{path}.{name}" if path else name
        if sub is not None and isinstance(value, dict):
            default = _field_default(fields[name])
            base = to_dict(default) if dataclasses.is_dataclass(default) else {}
            base = merge(base, _preset_layer(sub, merge(base, value)))
            kwargs[name] = from_dict(sub, merge(base, value), key)
        else:
            kwargs[name] = check_value(hints[name], value, key)
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
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not a valid YAML scalar or list") from None
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; a syntax error names the file, line and column."""
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as err:  # its message spans lines: keep the place, "line L, column C"
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ConfigError(f"{path}: {where}not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> T:
    """``base`` (defaults a command derives, such as ``demo --quick``'s sizes), the YAML file, ``key=value``
    overrides, then ``values`` (a nested dict of already-typed values, as the command line's named flags give) —
    each laid over the one before."""
    data = read_yaml_mapping(path) if path is not None else {}
    layers = [base or {}, data, parse_overrides(overrides or []), values or {}]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge(merged, layer)
    return from_dict(cls, merged)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_config(config: Any) -> str:
    """The config as the YAML a user would write: every key, in field order; loading it gives the same config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(to_dict(config), fh, sort_keys=False)
