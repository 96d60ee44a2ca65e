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

from restyle.config.model import Config, check_style_blend
from restyle.config.options import (
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
from restyle.config.text import field_type, options, parse_field, run_fields, shown_default, value_kind
from restyle.spec import GATYS_CONTENT, GATYS_STYLE, LAYER_SETS, PRESETS

__all__ = [
    "COLOR_MODES", "DEFAULT_PHOTO_WEIGHT", "DEVICES", "GATYS_CONTENT", "GATYS_STYLE", "GROUPS", "INITS", "LAYER_SETS",
    "OPTIMIZERS", "POOLINGS", "PRECISIONS", "PRESETS", "Config", "Option", "check_style_blend", "field_type",
    "is_device", "option", "options", "parse_field", "parse_layers", "run_fields", "shown_default", "value_kind",
]
