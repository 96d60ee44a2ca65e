"""restyle: neural style transfer (Gatys, Ecker & Bethge 2016), offline, on CPU and GPU.

>>> import restyle
>>> result = restyle.stylize("photo.jpg", ["painting.jpg"], size=256)
>>> result.image.save("out.png")

Names are imported on first use, so ``restyle --help`` does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr
from restyle._version import __version__

#: public name -> module that defines it
_EXPORTS = {
    "stylize": "restyle.api",
    "score": "restyle.api",
    "read_run_record": "restyle.api",
    "build_grid": "restyle.api",
    "preset_grid": "restyle.api",
    "run_study": "restyle.api",
    "Config": "restyle.config",
    "LAYER_SETS": "restyle.spec",
    "PRESETS": "restyle.spec",
    "layer_names": "restyle.spec",
    "Result": "restyle.engine",
    "StyleTransfer": "restyle.engine",
    "Started": "restyle.engine.events",
    "Progress": "restyle.engine.events",
    "Finished": "restyle.engine.events",
    "RestyleError": "restyle.errors",
    "VGGFeatures": "restyle.nn.vgg",
    "build_backbone": "restyle.backbone",
    "load_weights": "restyle.weights",
}

__all__ = [
    "Config", "Finished", "LAYER_SETS", "PRESETS", "Progress", "RestyleError", "Result", "Started",
    "StyleTransfer", "VGGFeatures", "__version__", "build_backbone", "build_grid", "layer_names", "load_weights",
    "preset_grid", "read_run_record", "run_study", "score", "stylize",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, keep=True)


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from restyle.api import (
        build_grid,
        preset_grid,
        read_run_record,
        run_study,
        score,
        stylize,
    )
    from restyle.backbone import build_backbone
    from restyle.config import Config
    from restyle.engine import Result, StyleTransfer
    from restyle.engine.events import Finished, Progress, Started
    from restyle.errors import RestyleError
    from restyle.nn.vgg import VGGFeatures
    from restyle.spec import LAYER_SETS, PRESETS, layer_names
    from restyle.weights import load_weights
