"""What the fields of an options dataclass (:class:`~restyle.config.Config`) are to users: their
:class:`Option`, their type, their default as help shows it, and the one parser of the text a user
types for a field (command line, ``--sweep``, a form): :func:`parse_field`.

Each function takes the dataclass, so :mod:`restyle.config.model` parses text without importing
:mod:`restyle.config`, which binds these functions to Config (``restyle.config.options()``, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import MISSING
from typing import Any

from restyle.config.choices import Option, parse_layers
from restyle.errors import ConfigError


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.cache
def options(cls: type) -> dict[str, Option]:
    """Every field's :class:`Option`, in field order."""
    return {name: f.metadata["option"] for name, f in _fields(cls).items()}


def run_fields(cls: type) -> list[str]:
    """The fields users set as run options (all but the internal ones), in field order."""
    return [name for name, opt in options(cls).items() if opt.internal is None]


def field_name(cls: type, name: str) -> str:
    """The field that ``name`` (``"style_weight"``, ``"--style-weight"``, ``"style-weight"``) names."""
    key = name.strip().lstrip("-").replace("-", "_")
    if key not in _fields(cls):
        raise ConfigError(f"unknown option '{name}'; choose one of: {', '.join(run_fields(cls))}")
    return key


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    """(the type of the field ``name`` names (``"size"``, ``"--size"``) without None, whether None is allowed):
    ``int | None`` -> ``(int, True)``."""
    return _field_type(cls, field_name(cls, name))


@functools.cache
def _field_type(cls: type, name: str) -> tuple[Any, bool]:
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return next(a for a in args if a is not type(None)), type(None) in args


def value_kind(cls: type, name: str) -> str:
    """What field ``name`` holds: "bool", "int", "float", "str", "list" (of items) or "layers" (a layer dict)."""
    base, _ = _field_type(cls, field_name(cls, name))
    origin = typing.get_origin(base)
    return "layers" if origin is dict else "list" if origin is list else base.__name__


def shown_default(cls: type, name: str) -> str | None:
    """The default of field ``name`` as help shows it (None: nothing to show, e.g. a flag that is off)."""
    name = field_name(cls, name)
    opt = options(cls)[name]
    if opt.shown is not None:
        return opt.shown or None
    f = _fields(cls)[name]
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return ",".join(k if w == 1.0 else f"{k}:{w:g}" for k, w in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_KINDS = {"bool": "bool (true/false, yes/no, on/off, 1/0)", "layers": "layer list (L[:W],.. or a set name)"}


def _scalar(kind: Any, raw: str) -> Any:
    if kind is bool:
        if raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise ValueError(raw)
    if kind is int:
        number = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)  # 1e3 is a whole number too
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(raw)
        return int(number)
    return float(raw) if kind is float else raw


def parse_field(cls: type, name: str, text: str, *, label: str | None = None, item: bool = False) -> Any:
    """The value of field ``name`` (``"style_weight"``, ``"--style-weight"``) that ``text`` means, by the
    field's type: ``true``/``false`` (yes/no, on/off, 1/0), numbers (an int may be written 1e3), comma-separated
    lists, layer lists (``block1_conv1:2,block3_conv1`` or a set name), ``none`` for fields that may be None.
    ``item``: one item of a list field (a repeatable flag's value). Bad text: a one-line ConfigError naming ``label``
    (default: the field's flag) and the text."""
    key = field_name(cls, name)
    opt = options(cls)[key]
    if opt.internal is not None:
        raise ConfigError(f"'{key}' is not a run option ({opt.internal})")
    label = label or opt.flags[0]
    base, nullable = _field_type(cls, key)
    raw = text.strip()
    words = dict(opt.words)
    if not item and raw.lower() in words:  # a value the field names by a word (auto)
        return words[raw.lower()]
    if nullable and not item and raw.lower() in ("none", "null"):
        return None
    origin = typing.get_origin(base)
    of = typing.get_args(base)[0] if origin is list else None
    value: Any
    try:
        if origin is dict:
            value = parse_layers(raw)
        elif of is not None and item:
            value = _scalar(of, raw)
        elif of is not None:
            items = [x.strip() for x in raw.split(",") if x.strip()]
            if not items:
                raise ValueError(raw)
            value = [_scalar(of, x) for x in items]
        else:
            value = _scalar(base, raw)
    except ConfigError as err:
        raise ConfigError(f"{label}: {err}") from None
    except ValueError:
        kind = (of.__name__ if item else f"comma-separated list of {of.__name__}s") if of else _KINDS.get(
            value_kind(cls, key), value_kind(cls, key))
        raise ConfigError(f"{label}: '{text}' is not a valid {kind}{' (or none)' if nullable else ''}") from None
    if opt.choices is not None and value not in opt.choices:
        raise ConfigError(f"{label}: unknown value '{raw}'; choose one of: "
                          f"{', '.join([*opt.choices, *(['none'] if nullable else [])])}")
    return value
