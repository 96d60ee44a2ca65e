"""restyle: neural style transfer (Gatys, Ecker & Bethge 2016), offline, on CPU and GPU.

>>> import restyle
>>> result = restyle.stylize("photo.jpg", ["painting.jpg"], size=256)
>>> result.image.save("out.png")

Names are imported on first use, so ``restyle --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "stylize": "restyle.api",
    "Config": "restyle.config",
    "LAYER_SETS": "restyle.config",
    "PRESETS": "restyle.config",
    "Result": "restyle.engine",
    "StyleTransfer": "restyle.engine",
    "RestyleError": "restyle.errors",
    "VGGFeatures": "restyle.models",
    "build_backbone": "restyle.models",
    "layer_names": "restyle.models",
    "load_weights": "restyle.weights",
    "score": "restyle.metrics",
    "build_grid": "restyle.study",
    "run_study": "restyle.study",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'restyle' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from restyle.api import stylize
    from restyle.config import LAYER_SETS, PRESETS, Config
    from restyle.engine import Result, StyleTransfer
    from restyle.errors import RestyleError
    from restyle.models import VGGFeatures, build_backbone, layer_names
    from restyle.weights import load_weights
    from restyle.metrics import score
    from restyle.study import build_grid, run_study
