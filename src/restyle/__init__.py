"""restyle: neural style transfer (Gatys, Ecker & Bethge 2016), offline, on CPU and GPU.

>>> import restyle
>>> result = restyle.stylize("photo.jpg", ["painting.jpg"], size=256)
>>> result.image.save("out.png")
"""

__version__ = "0.1.0"

from restyle.api import stylize  # noqa: E402
from restyle.config import LAYER_SETS, PRESETS, Config  # noqa: E402
from restyle.engine import Result, StyleTransfer  # noqa: E402
from restyle.errors import RestyleError  # noqa: E402
from restyle.models import VGGFeatures, build_backbone, layer_names  # noqa: E402

__all__ = [
    "Config", "LAYER_SETS", "PRESETS", "Result", "RestyleError", "StyleTransfer", "VGGFeatures",
    "build_backbone", "layer_names", "stylize", "__version__",
]
