"""Image-quality metrics for style-transfer outputs, from one fixed evaluator.

Every metric is computed the same way whatever produced the output (model, layers, size,
precision, device), so numbers from different runs and studies can be compared:

- the images are loaded as 8-bit RGB and resized (LANCZOS) so that their longest side is
  :data:`EVAL_SIZE`; the output is then resized to exactly the content image's evaluation size
  where the two are compared pixel by pixel or feature by feature;
- features come from the embedded VGG19 (max pooling) in fp32 on the CPU.

Metrics (see ``docs/metrics.md`` for the formulas):

``content_distance``    ‖F(out) − F(content)‖² / ‖F(content)‖² at block4_conv2      (lower: closer)
``style_distance``      mean over the Gatys layers of ‖G(out) − G(style)‖² / ‖G(style)‖²   (lower)
``ssim``                SSIM of the luminance of output and content (Gaussian window)   (higher: closer)
``histogram_distance``  mean over R, G, B of the 1-Wasserstein distance between 64-bin
                        histograms of output and style, in [0, 1] units               (lower)
``tv``                  mean absolute difference between neighbouring pixels, [0, 1]   (lower: smoother)

>>> from restyle.metrics import score
>>> score("out.png", "photo.jpg", "painting.jpg").as_dict()
{'content_distance': 0.41, 'style_distance': 0.08, 'ssim': 0.62, 'histogram_distance': 0.03, 'tv': 0.05}

Also ``restyle score OUT.png [--content C] [--style S] [--json]``.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from restyle.errors import ConfigError
from restyle.io import images
from restyle.nn.losses import EPS, gram
from restyle.spec import GATYS_STYLE

#: Longest side (pixels) every image is resized to before it is scored.
EVAL_SIZE = 256
#: The evaluator's content layer and style layers (the Gatys et al. 2016 choices, on VGG19).
EVAL_CONTENT_LAYER = "block4_conv2"
EVAL_STYLE_LAYERS = tuple(GATYS_STYLE)
#: SSIM parameters (Wang et al. 2004): Gaussian window size and sigma, and the constants.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
#: Bins per channel of the colour histograms (of 256 levels: 4 levels per bin).
HIST_BINS = 64
#: Rec. 601 luma weights for the SSIM's luminance channel.
LUMA = (0.299, 0.587, 0.114)



def describe() -> str:
    """The evaluator in words (for reports)."""
    return (f"embedded VGG19, max pooling, fp32 on CPU; images resized to longest side {EVAL_SIZE} px; "
            f"content layer {EVAL_CONTENT_LAYER}; style layers {', '.join(EVAL_STYLE_LAYERS)}")


@dataclass(frozen=True)
class MetricInfo:
    name: str
    better: str  # "lower" or "higher"
    summary: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("content_distance", "lower", f"relative VGG19 {EVAL_CONTENT_LAYER} feature distance to the content"),
    MetricInfo("style_distance", "lower", "relative Gram-matrix distance to the style, mean of the 5 Gatys layers"),
    MetricInfo("ssim", "higher", "structural similarity of the luminance to the content (1 = identical)"),
    MetricInfo("histogram_distance", "lower", f"colour: mean per-channel 1-Wasserstein distance of {HIST_BINS}-bin histograms to the style"),
    MetricInfo("tv", "lower", "total variation: mean absolute difference of neighbouring pixels"),
)
METRIC_NAMES = tuple(m.name for m in METRICS)


@dataclass
class Scores:
    content_distance: float
    style_distance: float
    ssim: float
    histogram_distance: float
    tv: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The evaluator network and image preparation

_NET = None
_CACHE: dict[tuple, Any] = {}  # per-file features, keyed by (kind, path, mtime, size)
_CACHE_MAX = 64


def evaluator():
    """The fixed evaluation network (embedded VGG19, max pooling, fp32, CPU); built once per process."""
    global _NET
    if _NET is None:
        from restyle.backbone import build_backbone

        _NET = build_backbone("vgg19", "embedded", "max").float().cpu().eval()
    return _NET


def prepare(source: images.ImageSource, *, role: str = "image", size: int | None = None):
    """``source`` as an RGB PIL image whose longest side is ``size`` (default :data:`EVAL_SIZE`)."""
    return images.resize_longest(images.load_image(source, max_pixels=None, role=role), size or EVAL_SIZE)


def _features(img, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return evaluator()(images.to_tensor(img), layers)


def _file_key(kind: str, source: Any) -> tuple | None:
    if not isinstance(source, (str, os.PathLike)):
        return None
    try:
        st = Path(source).stat()
    except OSError:
        return None  # load_image reports it
    return (kind, EVAL_SIZE, str(Path(source).resolve()), st.st_mtime_ns, st.st_size)


def _cached(kind: str, source: Any, compute):
    key = _file_key(kind, source)
    if key is None:
        return compute()
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compute()
    return _CACHE[key]


class _Content:
    """What the metrics need of a content image: its evaluation image, features, luminance."""

    def __init__(self, source: Any):
        self.image = prepare(source, role="content image")
        self.luma = luminance(images.to_tensor(self.image))

    @functools.cached_property
    def features(self) -> torch.Tensor:
        return _features(self.image, [EVAL_CONTENT_LAYER])[EVAL_CONTENT_LAYER]


def _style_grams(source: Any) -> dict[str, torch.Tensor]:
    def compute() -> dict[str, torch.Tensor]:
        feats = _features(prepare(source, role="style image"), EVAL_STYLE_LAYERS)
        return {n: gram(feats[n]) for n in EVAL_STYLE_LAYERS}

    return _cached("grams", source, compute)


def _style_hist(source: Any) -> np.ndarray:
    return _cached("hist", source, lambda: histograms(prepare(source, role="style image")))


def _content(source: Any) -> _Content:
    return _cached("content", source, lambda: _Content(source))


def _blend(sources: Any, blend: Sequence[float] | None) -> list[tuple[Any, float]]:
    """``[(style, weight)]`` with weights summing to 1 (equal unless ``blend`` is given, as the engine's)."""
    if isinstance(sources, (str, os.PathLike)) or not isinstance(sources, (list, tuple)):
        sources = [sources]
    if not sources:
        raise ConfigError("give at least one style image to score against")
    weights = [float(w) for w in blend] if blend is not None else [1.0] * len(sources)
    if len(weights) != len(sources) or sum(weights) <= 0 or min(weights) < 0:
        raise ConfigError(f"{len(weights)} style weight(s) for {len(sources)} style image(s); need one >= 0 each")
    total = sum(weights)
    return [(s, w / total) for s, w in zip(sources, weights)]


def _target_grams(styles: list[tuple[Any, float]]) -> dict[str, torch.Tensor]:
    grams = [(_style_grams(s), w) for s, w in styles]
    return {n: sum(g[n] * w for g, w in grams) for n in EVAL_STYLE_LAYERS}


def _target_hist(styles: list[tuple[Any, float]]) -> np.ndarray:
    return sum(_style_hist(s) * w for s, w in styles)


# ---------------------------------------------------------------------------------------------
# The metrics on prepared data


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (1x1xHxW) of an RGB 1x3xHxW tensor in [0, 1]."""
    w = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_tensors(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM of two single-channel 1x1xHxW tensors in [0, 1] (valid-window Gaussian SSIM)."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double(), y.double()
    size = min(SSIM_WINDOW, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # odd
    win = _gaussian_window(size, SSIM_SIGMA)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sxy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sxx + syy + SSIM_C2)
    return float((num / den).mean())


def histograms(img) -> np.ndarray:
    """Normalised ``HIST_BINS``-bin histogram per channel (3 x HIST_BINS) of an RGB PIL image."""
    pixels = np.asarray(img, dtype=np.uint8).reshape(-1, 3)
    bins = (pixels.astype(np.int64) * HIST_BINS) // 256
    return np.stack([np.bincount(bins[:, c], minlength=HIST_BINS) / len(bins) for c in range(3)])


def wasserstein_hist(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over channels of the 1-Wasserstein (earth mover's) distance between two normalised
    histograms with bins of width ``1/HIST_BINS`` on [0, 1]: Σ_k |CDF_a(k) − CDF_b(k)| / HIST_BINS."""
    cdf = np.cumsum(a, axis=-1) - np.cumsum(b, axis=-1)
    return float(np.abs(cdf).sum(axis=-1).mean() / HIST_BINS)


def tv_tensor(x: torch.Tensor) -> float:
    """Mean absolute difference over all horizontally and vertically neighbouring pixel pairs
    (all channels) of a 1x3xHxW tensor in [0, 1]."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    return float((dx.sum() + dy.sum()) / (dx.numel() + dy.numel()))


def _style_distance(feats: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> float:
    values = [float((gram(feats[n]) - target[n]).pow(2).sum() / (target[n].pow(2).sum() + EPS)) for n in EVAL_STYLE_LAYERS]
    return sum(values) / len(values)


def _content_distance(feat: torch.Tensor, target: torch.Tensor) -> float:
    return float((feat - target).pow(2).sum() / (target.pow(2).sum() + EPS))


# ---------------------------------------------------------------------------------------------
# Public functions


def score(output: Any, content: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> Scores:
    """All metrics of ``output`` against ``content`` and ``style`` (one image or a list of them,
    blended with ``style_blend`` weights as the engine blends them). Inputs: paths, PIL images,
    arrays or tensors."""
    c = _content(content)
    styles = _blend(style, style_blend)
    grams, hist = _target_grams(styles), _target_hist(styles)
    out_full = prepare(output, role="output image")
    out = images.resize_to(out_full, c.image.size)
    feats = _features(out, [EVAL_CONTENT_LAYER, *EVAL_STYLE_LAYERS])
    x = images.to_tensor(out)
    return Scores(
        content_distance=_content_distance(feats[EVAL_CONTENT_LAYER], c.features),
        style_distance=_style_distance(feats, grams),
        ssim=ssim_tensors(luminance(x), c.luma),
        histogram_distance=wasserstein_hist(histograms(out), hist),
        tv=tv_tensor(x),
    )


def content_distance(output: Any, content: Any) -> float:
    c = _content(content)
    out = images.resize_to(prepare(output, role="output image"), c.image.size)
    return _content_distance(_features(out, [EVAL_CONTENT_LAYER])[EVAL_CONTENT_LAYER], c.features)


def style_distance(output: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> float:
    grams = _target_grams(_blend(style, style_blend))
    return _style_distance(_features(prepare(output, role="output image"), EVAL_STYLE_LAYERS), grams)


def ssim(output: Any, content: Any) -> float:
    c = _content(content)
    out = images.resize_to(prepare(output, role="output image"), c.image.size)
    return ssim_tensors(luminance(images.to_tensor(out)), c.luma)


def histogram_distance(output: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> float:
    hist = _target_hist(_blend(style, style_blend))
    return wasserstein_hist(histograms(prepare(output, role="output image")), hist)


def total_variation(output: Any) -> float:
    return tv_tensor(images.to_tensor(prepare(output, role="output image")))


# ---------------------------------------------------------------------------------------------
# restyle score


def format_table(values: dict[str, float]) -> str:
    lines = [f"{'metric':<20} {'value':>10}  better  meaning"]
    for m in METRICS:
        v = values.get(m.name, float("nan"))
        lines.append(f"{m.name:<20} {_fmt(v):>10}  {m.better:<6}  {m.summary}")
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.4g}"
