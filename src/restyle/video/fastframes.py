"""Stylising a video with a one-pass method (a fast model, the universal method): each frame is one
forward pass, and the temporal consistency is a blend instead of an optimisation term:

    out_t = k · warp(out_t−1) + (1 − k) · net(frame_t),    k = a · m

``warp`` brings the previous *output* frame to frame t by the input's backward optical flow
(:mod:`.flow`, DIS), ``m`` is frame t's reliability mask (1 where the flow is forward-backward
consistent and off motion boundaries, 0 where frame t shows what frame t−1 did not), and ``a`` is
``--temporal-blend`` (0: independent frames). Along a motion path the output is an exponential
moving average of the network's frames (the frame j steps back weighs ``a^j (1 − a)``), so
texture the network draws a little differently in each frame stops shimmering, while what comes
into view is the network's own picture of it.

The cost is two DIS flows (the ultrafast preset), the masks and one remap per frame: about 6 ms
at 256 px beside the network's 25-35 ms. ``bench/fast/video.py`` measures it, with the warping
error for each ``a``; the default's reasons are at :data:`restyle.video.defaults.DEFAULT_TEMPORAL_BLEND`.
The previous output is the saved 8-bit frame, so a run continued from its work folder makes the
frames an uninterrupted run makes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from restyle.config import Config
from restyle.errors import ConfigError
from restyle.methods import method_for
from restyle.video import flow


def blend_frames(net_out: np.ndarray, previous_out: np.ndarray, link: flow.Pair, weight: float) -> np.ndarray:
    """``k · warp(previous_out) + (1 − k) · net_out`` with ``k = weight · mask`` (arrays ``H x W x 3``
    in [0, 1]; ``link``: the flow and masks from the previous input frame to this one). The warp is
    bicubic: a blended frame is warped again and again, and bilinear resampling's blur piles up
    (at A = 0.5 the texture's total variation kept 72% of the independent frames' with bilinear,
    75% with bicubic; at 0.7, 61% and 67%; the warping error the same)."""
    k = weight * link.masks.weights[..., None]
    return np.clip(k * link.warp(previous_out, cubic=True) + (1 - k) * net_out, 0, 1)


class FastFrameRunner:
    """One frame of a one-pass method's video: the method's output (through
    :func:`restyle.methods.method_for`, so the colour controls apply as for a photo), blended with
    the previous output frame warped to it. Same interface as the optimiser's frame runner in
    :mod:`.stylize`."""

    def __init__(self, config: Config, blend: float, preset: str, emit: Callable[[Any], None],
                 styles: Sequence[Any] = ()):
        if not 0 <= blend <= 1:
            raise ConfigError(f"--temporal-blend must be in [0, 1], got {blend}")
        self.config, self.blend, self.emit, self.styles = config, blend, emit, list(styles)
        self.method = method_for(config)
        self.estimator = flow.FlowEstimator(preset) if blend > 0 else None
        self.frame_seconds: list[float] = []

    def iterations(self, pos: int) -> int | None:
        return None if self.method.iterative(self.config) else 0

    def __call__(self, pos: int, frame: Image.Image,
                 previous: tuple[np.ndarray, np.ndarray] | None) -> tuple[Image.Image, float]:
        result = self.method.run(frame, self.styles, self.config, on_event=self.emit)
        if self.estimator is None or previous is None:
            return result.image, result.final_loss
        link = flow.pair(self.estimator, previous[0], _array(frame))
        out = blend_frames(_array(result.image), previous[1], link, self.blend)
        return Image.fromarray(np.rint(out * 255).astype(np.uint8)), result.final_loss

    def eta(self, pos: int, total: int) -> float | None:
        """Seconds left for frames pos+1.. at the pace of the last ten frames."""
        recent = self.frame_seconds[-10:]
        return sum(recent) / len(recent) * (total - pos - 1) if recent else None


def _array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255

