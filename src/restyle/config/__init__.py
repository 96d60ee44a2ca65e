"""The typed run configuration behind the CLI, the Python API and the PNG's saved config.

Each :class:`Config` field carries its user-facing description (an :class:`Option` in the
field's metadata): help text, command-line flag(s), help group, metavar and choices. The CLI's
run options are generated from it (``restyle.cli.options``), and :func:`parse_field` is the one
parser of the text a user types for a field (command line, ``--sweep``, a form).
"""

from __future__ import annotations

from restyle.config.model import Config
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
    option,
    parse_layers,
)
from restyle.config.text import options, parse_field, run_fields, shown_default, value_kind
from restyle.spec import GATYS_CONTENT, GATYS_STYLE, LAYER_SETS, PRESETS

__all__ = [
    "COLOR_MODES", "DEFAULT_PHOTO_WEIGHT", "DEVICES", "GATYS_CONTENT", "GATYS_STYLE", "GROUPS", "INITS", "LAYER_SETS",
    "OPTIMIZERS", "POOLINGS", "PRECISIONS", "PRESETS", "Config", "Option", "option", "options", "parse_field",
    "parse_layers", "run_fields", "shown_default", "value_kind",
]
