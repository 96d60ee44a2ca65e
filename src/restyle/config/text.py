"""The fields' metadata and the one parser of the text a user types for a field (command line,
``--sweep``, a form): :func:`parse_field`. Each function is :mod:`restyle.config.fields`' bound
to :class:`Config`."""

from __future__ import annotations

from typing import Any

from restyle.config import fields
from restyle.config.model import Config
from restyle.config.options import Option


def options() -> dict[str, Option]:
    """Every Config field's :class:`Option`, in field order."""
    return fields.options(Config)


def run_fields() -> list[str]:
    """The fields users set as run options (all but the internal ones), in field order."""
    return fields.run_fields(Config)


def shown_default(name: str) -> str | None:
    """The default of field ``name`` as help shows it (None: nothing to show, e.g. a flag that is off)."""
    return fields.shown_default(Config, name)


def field_name(name: str) -> str:
    """The Config field that ``name`` (``"style_weight"``, ``"--style-weight"``) names; else a ConfigError."""
    return fields.field_name(Config, name)


def field_type(name: str) -> tuple[Any, bool]:
    """(the type of Config field ``name`` without None, whether None is allowed): ``size`` -> ``(int, True)``."""
    return fields.field_type(Config, field_name(name))


def value_kind(name: str) -> str:
    """What field ``name`` holds: "bool", "int", "float", "str", "list" (of items) or "layers" (a layer dict)."""
    return fields.value_kind(Config, name)


def parse_field(name: str, text: str, *, label: str | None = None, item: bool = False) -> Any:
    """The value of Config field ``name`` (``"style_weight"``, ``"--style-weight"``) that ``text`` means, by the
    field's type: ``true``/``false`` (yes/no, on/off, 1/0), numbers (an int may be written 1e3), comma-separated
    lists, layer lists (``block1_conv1:2,block3_conv1`` or a set name), ``none`` for fields that may be None.
    ``item``: one item of a list field (a repeatable flag's value). Bad text: a one-line ConfigError naming ``label``
    (default: the field's flag) and the text."""
<<<<<<< HEAD
    key = field_name(name)
    opt = options()[key]
    if opt.internal is not None:
        raise ConfigError(f"'{key}' is not a run option ({opt.internal})")
    label = label or opt.flags[0]
    base, nullable = _type_of(key)
    raw = text.strip()
    if nullable and not item and (raw.lower() in ("none", "null") or (name == "iterations" and raw.lower() == "auto")):
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
            value_kind(key), value_kind(key))
        raise ConfigError(f"{label}: '{text}' is not a valid {kind}{' (or none)' if nullable else ''}") from None
    if opt.choices is not None and value not in opt.choices:
        raise ConfigError(f"{label}: unknown value '{raw}'; choose one of: "
                          f"{', '.join([*opt.choices, *(['none'] if nullable else [])])}")
    return value
=======
    return fields.parse_field(Config, name, text, label=label, item=item)
>>>>>>> wt-config
