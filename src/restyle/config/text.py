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
    return fields.parse_field(Config, name, text, label=label, item=item)
