"""Optical flow between consecutive frames and what it makes: warped images, the reliability
mask (forward-backward consistency, motion boundaries), and the warping error.

Flow is OpenCV's DIS (Kroeger et al. 2016; no model to download), computed both ways on the
grey input frames. The masks follow Ruder, Dosovitskiy & Brox (2016), after Sundaram et al.
(2010): a pixel of frame t is *disoccluded* when the flow back to t−1 and the flow forward from
there do not cancel, ``|w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5``, and on a *motion boundary* when
``|∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002``; pixels whose source lies outside frame t−1 are disoccluded
too. Arrays are NumPy: images ``H x W x 3`` float32 in [0, 1], flows ``H x W x 2`` (x, y) in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from restyle.video.defaults import DEFAULT_FLOW_PRESET, FLOW_PRESETS

#: DIS presets by name (OpenCV's ``DISOPTICAL_FLOW_PRESET_*``), and the default one.
PRESETS = FLOW_PRESETS
DEFAULT_PRESET = DEFAULT_FLOW_PRESET


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        from restyle.errors import ConfigError

        raise ConfigError("video needs OpenCV: pip install 'restyle[video]'") from None
    return cv2


def grey(image: np.ndarray) -> np.ndarray:
    """An ``H x W x 3`` image (uint8, or float in [0, 1]) as ``H x W`` uint8 luma, as DIS reads it."""
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(_cv2().cvtColor(image, _cv2().COLOR_RGB2GRAY))


class FlowEstimator:
    """DIS optical flow at one preset; ``(a, b) -> flow`` with ``a(p) ≈ b(p + flow(p))``."""

    def __init__(self, preset: str = DEFAULT_PRESET):
        if preset not in PRESETS:
            from restyle.errors import ConfigError

            raise ConfigError(f"unknown flow preset '{preset}'; choose one of: {', '.join(PRESETS)}")
        cv2 = _cv2()
        self._dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow from frame ``a`` to frame ``b`` (RGB or grey, same size): ``H x W x 2`` float32."""
        ga = a if a.ndim == 2 else grey(a)
        gb = b if b.ndim == 2 else grey(b)
        if ga.shape != gb.shape:
            raise ValueError(f"frames of different sizes: {ga.shape} and {gb.shape}")
        return np.asarray(self._dis.calc(ga, gb, None), dtype=np.float32)


def sample_points(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) coordinates each pixel ``p`` of the flow's frame reads: ``p + flow(p)``."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow[..., 0], gy + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray, *, cubic: bool = False) -> np.ndarray:
    """``image`` resampled (bilinear, or bicubic with ``cubic``; edges replicated) at ``p + flow(p)``:
    with the backward flow (from frame t to frame t−1) it brings frame t−1 to frame t's positions."""
    cv2 = _cv2()
    mx, my = sample_points(flow)
    out = cv2.remap(np.ascontiguousarray(image, dtype=np.float32), mx, my,
                    cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def inside(flow: np.ndarray) -> np.ndarray:
    """Where ``p + flow(p)`` lies inside the frame, pixels being squares around their centres
    (bool ``H x W``)."""
    h, w = flow.shape[:2]
    mx, my = sample_points(flow)
    return (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)


@dataclass
class Masks:
    """For frame t, from the flows between it and frame t−1 (all bool ``H x W``)."""

    disoccluded: np.ndarray  # seen in t but not in t−1 (forward-backward check failed, or outside t−1)
    reliable: np.ndarray  # neither, nor on a motion boundary: where frame t−1, warped, says what frame t should be

    @property
    def weights(self) -> np.ndarray:
        """The reliable mask as ``H x W`` float32 (1 = reliable)."""
        return self.reliable.astype(np.float32)


def consistency(backward: np.ndarray, forward: np.ndarray) -> Masks:
    """The masks of frame t from ``backward`` (flow t → t−1) and ``forward`` (flow t−1 → t)."""
    forward_at = warp(forward, backward)  # w̃(p) = forward(p + backward(p))
    total = forward_at + backward
    lengths = (forward_at**2).sum(-1) + (backward**2).sum(-1)
    disoccluded = ((total**2).sum(-1) > 0.01 * lengths + 0.5) | ~inside(backward)
    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    gradient = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
    boundary = gradient > 0.01 * (backward**2).sum(-1) + 0.002
    return Masks(disoccluded, ~(disoccluded | boundary))


@dataclass
class Pair:
    """What frame t knows of frame t−1: the backward flow and the masks."""

    backward: np.ndarray
    masks: Masks

    def warp(self, previous: np.ndarray, *, cubic: bool = False) -> np.ndarray:
        """``previous`` (an image of frame t−1) brought to frame t."""
        return warp(previous, self.backward, cubic=cubic)


def pair(estimator: FlowEstimator, previous: np.ndarray, current: np.ndarray) -> Pair:
    """Flows both ways between two input frames, and frame ``current``'s masks."""
    g_prev, g_cur = grey(previous), grey(current)
    backward = estimator(g_cur, g_prev)
    forward = estimator(g_prev, g_cur)
    return Pair(backward, consistency(backward, forward))


def warping_error(previous_out: np.ndarray, current_out: np.ndarray, link: Pair) -> float:
    """Mean over reliable pixels (and channels) of the squared difference between an output frame
    and the previous output frame warped to it (Lai et al. 2018's E_warp, per frame pair)."""
    mask = link.masks.weights[..., None]
    count = float(mask.sum()) * current_out.shape[-1]
    if count == 0:
        return float("nan")
    diff = current_out.astype(np.float32) - link.warp(previous_out)
    return float((mask * diff**2).sum() / count)
