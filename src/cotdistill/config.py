"""Typed configs: dataclasses loaded from YAML, overridden by ``key=value``, saved next to each run.

An unknown key is an error naming the key and the keys allowed there. Each rule of a field is written once, on the
field: its type (a string setting is a ``Literal[...]``, which the loader checks and the command line turns into
choices), its range (``metadata={"range": ...}``) and its help text (``metadata={"help": ...}``, shown by
``--help`` and ``--print-config``). :func:`check_field_rules`, called from each dataclass's ``__post_init__``,
applies the first two to a config built in Python too; rules that join several fields stay in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import textwrap
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
    if typing.get_origin(tp) is typing.Literal:
        return f"one of {', '.join(str(a) for a in typing.get_args(tp))}"
    return PLAIN_NAMES.get(typing.get_origin(tp) or tp, str(tp).replace("typing.", ""))


class _Specific(ConfigError):
    """An error about a value of the field's kind (nan for a number, a list holding a wrong item): said as it is
    where the field also takes another type (``float | None``), not as "must be a number or null"."""


# every int field fits a 64-bit integer (a seed of 1e29 overflowed in torch); a field's own range is its __post_init__'s
INT_BOUND = 2**63


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut: a value built by YAML aliases made a 1.3 MB error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _number(value: Any, key: str) -> int | float | None:
    """``value`` as a finite number where it is a number or a number's text (YAML 1.1 leaves ``1e-5`` a string),
    None where it is neither; nan and inf are refused here, for every field (nan turned gradient clipping off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    number = value
    if isinstance(value, str):
        try:
            number = int(value)  # exact, where float() would round a 19-digit seed
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
    try:
        finite = math.isfinite(number)
    except OverflowError:  # an int past float's range
        finite = False
    if not finite:
        raise _Specific(f"{key} must be a finite number, found {_shown(value)}")
    return number


def _whole(value: Any, key: str) -> int | None:
    """``value`` as an int where it is a whole number in any spelling (``4.0``, ``1e3``), None where it is not."""
    exact = isinstance(value, int) and not isinstance(value, bool)
    number = value if exact else _number(value, key)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        return None
    if not -INT_BOUND <= number < INT_BOUND:
        raise _Specific(f"{key} must be a whole number in [-2**63, 2**63), found {_shown(value)}")
    return int(number)


def _same_kind(tp: Any, value: Any) -> bool:
    """``value`` is the container ``tp`` is (a list for ``list[str]``), so its error is about an item."""
    base = typing.get_origin(tp) or tp
    return (base in (list, tuple) and isinstance(value, (list, tuple))) or (base is dict and isinstance(value, dict))


def _check_union(tp: Any, value: Any, key: str) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    specific = None
    for option in (a for a in args if a is not type(None)):
        try:
            return check_value(option, value, key)
        except ConfigError as err:
            if isinstance(err, _Specific) or _same_kind(option, value):
                specific = specific or err
    if specific is not None:
        raise specific
    raise ConfigError(f"{key} must be {_type_name(tp)}, found {_shown(value)}")


def _check_mapping(tp: Any, value: dict, key: str) -> dict:
    """A mapping's keys and values as ``dict[K, V]`` says (``data.fields`` took lists, and aliases nested them)."""
    args = typing.get_args(tp) or (Any, Any)
    out = {}
    for name, item in value.items():
        if args[0] is str and not isinstance(name, str):
            raise ConfigError(f"{key} keys must be strings, found {_shown(name)} ({type(name).__name__})")
        out[name] = check_value(args[1], item, f"{key}.{name}")
    return out


def check_value(tp: Any, value: Any, key: str) -> Any:
    """``value`` as the field's type ``tp`` wants it, or a :class:`ConfigError` naming the key, the type and what
    was found (``optim.batch_size=2.5`` or ``seed=abc`` failed much later, deep in the trainer). Every number is
    finite; an int is a whole number (``4.0`` and ``1e3`` are read as one) within 64 bits; ints are accepted for
    floats, and strings that YAML 1.1 leaves unparsed (``1e-5``) are read as the number they mean."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _check_union(tp, value, key)
    if origin is typing.Literal:
        return check_literal(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        whole = _whole(value, key)
        if whole is not None:
            return whole
    elif tp is float:
        number = _number(value, key)
        if number is not None:
            return float(number)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) != len(args):
                    raise ConfigError(f"{key} must have {len(args)} items, found {len(value)}: {_shown(value)}")
                return tuple(check_value(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
            item = args[0] if args else Any
            checked = [check_value(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
            return tuple(checked) if (origin or tp) is tuple else checked
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return _check_mapping(tp, value, key)
    else:
        return value  # a type this checker does not know: the dataclass's own checks apply
    raise ConfigError(f"{key} must be {_type_name(tp)}, found {_shown(value)} ({type(value).__name__})")


def check_literal(tp: Any, value: Any, key: str) -> Any:
    """``value`` where it is one of the values of the ``Literal[...]`` type ``tp`` (of the same type: True is not 1),
    else a :class:`ConfigError` naming the key, the values allowed and what was found."""
    if any(value == allowed and type(value) is type(allowed) for allowed in typing.get_args(tp)):
        return value
    raise ConfigError(f"{key} must be {_type_name(tp)}, found {_shown(value)}")


@dataclasses.dataclass(frozen=True)
class Range:
    """The numbers a field allows, written once on the field (``metadata={"range": FRACTION}``) and said the same way
    in its error and its help: ``in (0, 1]``, ``>= 1``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""  # what a boundary value means ("0 disables clipping"), said in the error

    def __contains__(self, value: Any) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Range(0, low_open=True)  # > 0
NON_NEGATIVE = Range(0)  # >= 0
AT_LEAST_ONE = Range(1)  # a count
PROBABILITY = Range(0, 1)  # [0, 1]
SHARE = Range(0, 1, high_open=True)  # [0, 1): a share of records or tokens that leaves some
FRACTION = Range(0, 1, low_open=True)  # (0, 1]: a share that keeps some


def check_range(key: str, value: Any, allowed: Range, *, nullable: bool = False) -> None:
    """A :class:`ConfigError` naming the key, the range and the value where ``value`` is outside ``allowed``; None
    passes (whether the field may be null is its type's rule)."""
    if value is None or value in allowed:
        return
    null = " or null" if nullable else ""
    note = f" ({allowed.note})" if allowed.note else ""
    raise ConfigError(f"{key} must be {allowed}{null}{note}, got {_shown(value)}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once (``from __future__ import annotations`` leaves them strings)."""
    return typing.get_type_hints(cls)


def _has_literal(tp: Any) -> bool:
    if typing.get_origin(tp) is typing.Literal:
        return True
    return any(_has_literal(a) for a in typing.get_args(tp))


def check_field_rules(config: Any) -> None:
    """The rules a dataclass writes on its fields, for a config built in Python (``EncodeConfig(truncation="bad")``)
    as for one loaded: a value of a ``Literal`` type is one of its values, and a number with a ``range`` in its
    metadata is within it (each item of a list). Called first in each config's ``__post_init__``."""
    hints = _hints(type(config))
    for field in dataclasses.fields(config):
        value, tp = getattr(config, field.name), hints[field.name]
        if _has_literal(tp):
            check_value(tp, value, field.name)
        allowed = field.metadata.get("range")
        if allowed is None:
            continue
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                check_range(f"{field.name}[{i}]", item, allowed)
        else:
            check_range(field.name, value, allowed, nullable=type(None) in typing.get_args(tp))


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


def _string_keys(data: dict[Any, Any], path: str) -> dict[str, Any]:
    """A key is a name: YAML reads ``1:`` as an int and ``null:`` as None (which failed as a TypeError)."""
    for name in data:
        if not isinstance(name, str):
            where = f" in '{path}'" if path else ""
            raise ConfigError(f"config keys{where} must be strings, found {_shown(name)} ({type(name).__name__})")
    return data


def from_dict(cls: type[T], data: dict[str, Any] | None, path: str = "") -> T:
    """Build ``cls`` from a nested dict, recursing into dataclass fields; unknown keys are errors. A section given
    as a dict is laid over that field's own default, so a stage's defaults for a nested config (a selection
    experiment's SFT settings) are written once, in its field, and shown by ``--print-config``."""
    data = _renamed_keys(cls, _string_keys(dict(data or {}), path), path)
    hints = _hints(cls)
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


# what a field that may be null reads as null in an override (YAML's spellings, and Python's)
NULL_WORDS = ("null", "none", "~", "")


def _is_container(tp: Any) -> bool:
    return (typing.get_origin(tp) or tp) in (list, tuple, dict) or _is_dataclass_type(tp)


def _is_string_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Literal and all(isinstance(a, str) for a in typing.get_args(tp))


def _scalar(text: str) -> Any:
    """What YAML makes of ``text`` as one whole plain scalar (``true``, ``3``, ``.nan``); any other text is itself,
    with nothing cut: ``1 #2`` stays ``'1 #2'`` (a YAML document would read 1 and drop a comment)."""
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
    return _ConfigLoader("").construct_object(yaml.ScalarNode(tag, text))


def parse_text(tp: Any, text: str, key: str) -> Any:
    """An override's text read as the type ``tp`` of the field it sets. A string field takes the text as typed
    (YAML cut ``data.system=replace:… #### N`` at `` #`` and made ``data.path=my #1.jsonl`` the hub id ``my``);
    booleans and numbers are the whole text as YAML reads it; lists, mappings and sections are YAML's flow syntax
    (``[a, b]``, ``{a: b}``); a field that may be null reads ``null``, ``none`` or ``~`` as null."""
    is_union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    options = [a for a in typing.get_args(tp) if a is not type(None)] if is_union else [tp]
    if is_union and len(options) < len(typing.get_args(tp)) and text.strip().lower() in NULL_WORDS:
        return None
    if any(_is_container(o) for o in options) and text.lstrip().startswith(("[", "{")):
        return _load_yaml(text, f"override {key}")
    if str in options or any(_is_string_literal(o) for o in options):
        return text
    if all(o in (bool, int, float) for o in options):
        return _scalar(text.strip())
    return _load_yaml(text, f"override {key}")


def _field_type(cls: type, parts: list[str], key: str) -> Any:
    """The type of the field a dotted key sets, through sections and into mappings (``data.fields.prompt``: str);
    ``Any`` for a key no config has (from_dict names it). A key through a plain value is an error."""
    tp: Any = cls
    for i, part in enumerate(parts):
        section = _dataclass_in(tp)
        if section is None and typing.get_origin(tp) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = options[0] if len(options) == 1 else tp  # a mapping that may be null: keys go into the mapping
        mapping = typing.get_args(tp) if (typing.get_origin(tp) or tp) is dict else None
        if section is not None:
            names = {f.name for f in dataclasses.fields(section)}
            renamed = getattr(section, "DEPRECATED_KEYS", {}).get(part)
            if part not in names and renamed:  # an old name: the type of the key it now is
                return _field_type(section, [*renamed.split("."), *parts[i + 1:]], key)
            if part not in names:
                return Any
            tp = _hints(section)[part]
        elif mapping is not None or tp is Any:
            tp = mapping[1] if mapping else Any
        else:
            where = ".".join(parts[:i])
            raise ConfigError(f"{key}: {where} is {_type_name(tp)}, not a section with keys")
    return tp


def literal_choices(cls: type, key: str) -> list[Any] | None:
    """The values a dotted key's ``Literal`` type allows (through ``| None``), as the command line offers them for
    its flag; None where the key is of another type."""
    tp = _field_type(cls, key.split("."), key)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = options[0] if len(options) == 1 else tp
    return list(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else None


def _field_of(cls: type, key: str) -> tuple[dataclasses.Field, Any] | None:
    """The dataclass field a dotted key names, through sections, and its type; None where no field is named so."""
    section: type | None = cls
    *parents, last = key.split(".")
    for part in parents:
        section = _dataclass_in(_hints(section).get(part)) if section is not None else None
    if section is None:
        return None
    field = next((f for f in dataclasses.fields(section) if f.name == last), None)
    return None if field is None else (field, _hints(section)[last])


def field_help(cls: type, key: str) -> str:
    """The help written on the field a dotted key sets (``metadata={"help": ...}``), then the values its ``Literal``
    type allows or its range; "" where it has none of these."""
    found = _field_of(cls, key)
    if found is None:
        return ""
    field, tp = found
    allowed = _type_name(tp) if _has_literal(tp) and not _same_kind(tp, []) else ""
    parts = [field.metadata.get("help", ""), allowed, str(field.metadata.get("range") or "")]
    return "; ".join(p for p in parts if p)


def parse_overrides(overrides: list[str], cls: type) -> dict[str, Any]:
    """``["loss.kind=jsd", "optim.lr=1e-4"]`` → nested dict, each value read as the type of the field of ``cls``
    it sets (:func:`parse_text`)."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override must look like key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        value = parse_text(_field_type(cls, parts, key), raw, key)
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a key no config has, given a value and then keys
                raise ConfigError(f"{key}: {'.'.join(parts[:i + 1])} was set to a value by an earlier override, "
                                  "not a section with keys")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _Refused(yaml.MarkedYAMLError):
    """YAML that parses but that a config refuses (an alias, a key given twice), with its place in the file."""


class _ConfigLoader(yaml.SafeLoader):
    """YAML as a config needs it: no aliases (``*name`` repeats an anchored value: nested ones made a 262-byte file
    print 1.3 MB and one level deeper hang, and no config needs them) and no key given twice (the last silently won).
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(problem=f"an alias (*{event.anchor}) repeats another value: a config takes no aliases "
                                   "(write the value out)", problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        first_line: dict[tuple[type, Any], int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = self.construct_object(key_node, deep=True)
            try:
                seen = (type(name), name) in first_line
            except TypeError:  # an unhashable key: the base constructor names it
                continue
            if seen:
                raise _Refused(problem=f"key {name!r} is given twice (first on line {first_line[type(name), name]}): "
                                       "keep one", problem_mark=key_node.start_mark)
            first_line[type(name), name] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _load_yaml(stream: Any, where: str) -> Any:
    """YAML through :class:`_ConfigLoader`; an error names ``where``, the line and column, and what is wrong."""
    try:
        return yaml.load(stream, Loader=_ConfigLoader)
    except yaml.YAMLError as err:  # its message spans lines: keep the place, "line L, column C"
        mark = getattr(err, "problem_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or err
        what = problem if isinstance(err, _Refused) else f"not valid YAML ({problem})"
        raise ConfigError(f"{where}: {place}{what}") from None


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; an error names the file, line and column."""
    with open(path, encoding="utf-8") as fh:
        data = _load_yaml(fh, str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> T:
    """``base`` (defaults a command derives, such as ``demo --quick``'s sizes), the YAML file, ``key=value``
    overrides, then ``values`` (a nested dict of already-typed values, as the command line's named flags give) —
    each laid over the one before."""
    data = read_yaml_mapping(path) if path is not None else {}
    layers = [base or {}, data, parse_overrides(overrides or [], cls), values or {}]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge(merged, layer)
    return from_dict(cls, merged)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


HELP_WIDTH = 116  # the columns a printed config's help comments wrap at


def dump_config(config: Any, indent: str = "") -> str:
    """The config as the YAML a user would write: every key, in field order, under its help as a comment (the field's
    ``metadata["help"]``); loading it gives the same config."""
    lines = []
    values = to_dict(config)
    for field in dataclasses.fields(config):
        text = field_help(type(config), field.name)
        if text:
            width = max(HELP_WIDTH - len(indent), 40)
            lines += [f"{indent}# {line}" for line in textwrap.wrap(text, width, break_on_hyphens=False)]
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and dataclasses.fields(value):
            lines.append(f"{indent}{field.name}:")
            lines.append(dump_config(value, indent + "  ").rstrip("\n"))
        else:
            text = yaml.safe_dump({field.name: values[field.name]}, sort_keys=False, allow_unicode=True)
            lines += [f"{indent}{line}" for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(to_dict(config), fh, sort_keys=False)
