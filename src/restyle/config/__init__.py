"""The typed run configuration behind the CLI, the Python API and the PNG's saved config.

Each :class:`Config` field carries its user-facing description (an :class:`Option` in the
field's metadata): help text, command-line flag(s), help group, metavar and choices. The CLI's
run options are generated from it (``restyle.cli.options``), and :func:`parse_field` is the one
parser of the text a user types for a field (command line, ``--sweep``, a form), and
:func:`field_type` the one reading of a field's type. The rules several layers apply to a run's
options live here once: :func:`is_device` (the device spelling) and :func:`check_style_blend`
(one ``--style-blend`` weight per style image).
"""

from __future__ import annotations

from functools import partial

from restyle.config import fields
from restyle.config.choices import (
    COLOR_MODES,
    DEFAULT_PHOTO_WEIGHT,
    DEVICES,
    GROUPS,
    INITS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    Option,
    is_device,
    option,
    parse_layers,
)
from restyle.config.model import Config, check_style_blend
from restyle.spec import GATYS_CONTENT, GATYS_STYLE, LAYER_SETS, PRESETS

#: :mod:`restyle.config.fields` bound to :class:`Config`: ``options()`` (each field's :class:`Option`, in field
#: order), ``run_fields()`` (the fields users set as run options), ``shown_default(name)`` (the default as help shows
#: it), ``field_type(name)`` (``"size"`` -> ``(int, True)``: the type without None, whether None is allowed),
#: ``value_kind(name)`` ("bool", "int", "float", "str", "list" or "layers") and ``parse_field(name, text, *, label,
#: item)``, the one parser of the text a user types for a field.
options = partial(fields.options, Config)
run_fields = partial(fields.run_fields, Config)
shown_default = partial(fields.shown_default, Config)
field_type = partial(fields.field_type, Config)
value_kind = partial(fields.value_kind, Config)
parse_field = partial(fields.parse_field, Config)

__all__ = [
    "COLOR_MODES", "DEFAULT_PHOTO_WEIGHT", "DEVICES", "GATYS_CONTENT", "GATYS_STYLE", "GROUPS", "INITS", "LAYER_SETS",
    "OPTIMIZERS", "POOLINGS", "PRECISIONS", "PRESETS", "Config", "Option", "check_style_blend", "field_type",
    "is_device", "option", "options", "parse_field", "parse_layers", "run_fields", "shown_default", "value_kind",
]
