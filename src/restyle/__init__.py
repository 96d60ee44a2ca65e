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
    "stylize_video": "restyle.api",
    "score_video": "restyle.api",
    "plan_batch": "restyle.api",
    "run_batch": "restyle.api",
    "train_fast_model": "restyle.api",
    "TrainStarted": "restyle.train",
    "TrainProgress": "restyle.train",
    "TrainSample": "restyle.train",
    "TrainFinished": "restyle.train",
    "Method": "restyle.methods",
    "Backbone": "restyle.nn.network",
    "Config": "restyle.config",
    "LAYER_SETS": "restyle.spec",
    "PRESETS": "restyle.spec",
    "layer_names": "restyle.spec",
    "Result": "restyle.engine",
    "StyleTransfer": "restyle.engine",
    "Started": "restyle.engine.events",
    "Progress": "restyle.engine.events",
    "Finished": "restyle.engine.events",
    "FinishNow": "restyle.engine.events",
    "RestyleError": "restyle.errors",
    "VGGFeatures": "restyle.nn.vgg",
    "build_backbone": "restyle.backbone",
    "load_weights": "restyle.weights",
}

__all__ = [
    # what users call
    "stylize", "stylize_video", "plan_batch", "run_batch", "build_grid", "preset_grid", "run_study", "score",
    "score_video", "read_run_record", "train_fast_model",
    # what they pass and get back
    "Config", "Result", "Started", "Progress", "Finished", "FinishNow", "RestyleError", "LAYER_SETS", "PRESETS", "layer_names",
    "__version__", "TrainStarted", "TrainProgress", "TrainSample", "TrainFinished",
    # the seams, and the engine and network behind the default method
    "Method", "Backbone", "StyleTransfer", "VGGFeatures", "build_backbone", "load_weights",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, keep=True)


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from restyle.api import (
        build_grid,
        plan_batch,
        preset_grid,
        read_run_record,
        run_batch,
        run_study,
        score,
        score_video,
        stylize,
        stylize_video,
        train_fast_model,
    )
    from restyle.backbone import build_backbone
    from restyle.config import Config
    from restyle.engine import Result, StyleTransfer
    from restyle.engine.events import Finished, FinishNow, Progress, Started
    from restyle.errors import RestyleError
    from restyle.methods import Method
    from restyle.nn.network import Backbone
    from restyle.nn.vgg import VGGFeatures
    from restyle.spec import LAYER_SETS, PRESETS, layer_names
    from restyle.train import TrainFinished, TrainProgress, TrainSample, TrainStarted
    from restyle.weights import load_weights
