"""Image-quality metrics for style-transfer outputs, from one fixed evaluator.

Every metric is computed the same way whatever produced the output (model, layers, size,
precision, device), so numbers from different runs and studies can be compared:

- the images are loaded as 8-bit RGB and resized (LANCZOS) so that their longest side is the
  evaluator's size (default :data:`EVAL_SIZE`); the output is then resized to exactly the content
  image's evaluation size where the two are compared pixel by pixel or feature by feature;
- features come from the embedded VGG19 (max pooling) in fp32 on the CPU.

An :class:`Evaluator` holds its size and device, the network and its own cache of per-file work;
two evaluators share nothing mutable, so they can score side by side in one process. The
module-level functions are thin wrappers over the default evaluator, ``Evaluator()``.

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
>>> Evaluator(size=128).score("out.png", "photo.jpg", "painting.jpg")   # a smaller, faster evaluator

Also ``restyle score OUT.png [--content C] [--style S] [--json]``.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from restyle.errors import ConfigError
from restyle.io import images
from restyle.nn.losses import EPS, gram
from restyle.spec import GATYS_STYLE

if TYPE_CHECKING:
    from restyle.nn.vgg import VGGFeatures

#: Longest side (pixels) every image is resized to before it is scored, by default.
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
#: Per-file results (content, Gram matrices, histograms) an evaluator keeps.
CACHE_SIZE = 64


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
# The evaluator


@functools.lru_cache(maxsize=4)
def _network(device: str) -> VGGFeatures:
    """The evaluation network on ``device``, built once per process; frozen, so evaluators share it."""
    from restyle.backbone import build_backbone

    return build_backbone("vgg19", "embedded", "max").float().to(device).eval()


def prepare(source: images.ImageSource, *, role: str = "image", size: int | None = None):
    """``source`` as an RGB PIL image whose longest side is ``size`` (default :data:`EVAL_SIZE`)."""
    return images.resize_longest(images.load_image(source, max_pixels=None, role=role), size or EVAL_SIZE)


def file_key(source: Any) -> tuple[str, int, int] | None:
    """``(resolved path, mtime ns, bytes)`` of a file; None for in-memory images and unreadable paths."""
    try:
        st = Path(source).stat()
        return str(Path(source).resolve()), st.st_mtime_ns, st.st_size
    except (OSError, TypeError):  # not a path (PIL image, array, tensor), or not there (the loader says)
        return None


class _Content:
    """What the metrics need of a content image: its evaluation image, features, luminance."""

    def __init__(self, evaluator: Evaluator, source: Any):
        self._evaluator = evaluator
        self.image = evaluator.prepare(source, role="content image")
        self.luma = luminance(images.to_tensor(self.image))

    @functools.cached_property
    def features(self) -> torch.Tensor:
        return self._evaluator.features(self.image, [EVAL_CONTENT_LAYER])[EVAL_CONTENT_LAYER]


class Evaluator:
    """The fixed evaluator at one size on one device: its network, and an LRU cache (``cache_size``
    entries) of per-file results keyed by the file's identity (path, mtime, size), so a study that
    scores many outputs against the same content and style prepares those once. In-memory images
    are not cached. An evaluator is safe to use from several threads; it pickles as its settings."""

    def __init__(self, size: int = EVAL_SIZE, device: str | torch.device = "cpu", *, cache_size: int = CACHE_SIZE):
        if int(size) < 2:
            raise ConfigError(f"the evaluation size must be at least 2 px, got {size}")
        self.size = int(size)
        self.device = torch.device(device)
        self.cache_size = cache_size
        self._per_file = functools.lru_cache(maxsize=cache_size)(self._compute_file)

    def __repr__(self) -> str:
        return f"Evaluator(size={self.size}, device={str(self.device)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "device": str(self.device), "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def network(self) -> VGGFeatures:
        return _network(str(self.device))

    def describe(self) -> str:
        """The evaluator in words (for reports)."""
        where = "CPU" if self.device.type == "cpu" else str(self.device)
        return (f"embedded VGG19, max pooling, fp32 on {where}; images resized to longest side {self.size} px; "
                f"content layer {EVAL_CONTENT_LAYER}; style layers {', '.join(EVAL_STYLE_LAYERS)}")

    def clear_cache(self) -> None:
        self._per_file.cache_clear()

    # ---- preparation, cached per file

    def prepare(self, source: Any, *, role: str = "image"):
        """``source`` as an RGB PIL image whose longest side is this evaluator's size."""
        return prepare(source, role=role, size=self.size)

    def features(self, img, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The network's features of a prepared image, on the CPU."""
        x = images.to_tensor(img).to(self.device)
        with torch.no_grad():
            feats = self.network(x, layers)
        return {n: f.cpu() for n, f in feats.items()}

    def _compute_file(self, kind: str, key: tuple[str, int, int]) -> Any:
        return self._compute(kind, key[0])

    def _compute(self, kind: str, source: Any) -> Any:
        if kind == "content":
            return _Content(self, source)
        img = self.prepare(source, role="style image")
        if kind == "hist":
            return histograms(img)
        feats = self.features(img, EVAL_STYLE_LAYERS)
        return {n: gram(feats[n]) for n in EVAL_STYLE_LAYERS}

    def _cached(self, kind: str, source: Any) -> Any:
        key = file_key(source)
        return self._compute(kind, source) if key is None else self._per_file(kind, key)

    def _content(self, source: Any) -> _Content:
        return self._cached("content", source)

    def _target_grams(self, styles: list[tuple[Any, float]]) -> dict[str, torch.Tensor]:
        grams = [(self._cached("grams", s), w) for s, w in styles]
        return {n: sum(g[n] * w for g, w in grams) for n in EVAL_STYLE_LAYERS}

    def _target_hist(self, styles: list[tuple[Any, float]]) -> np.ndarray:
        return sum(self._cached("hist", s) * w for s, w in styles)

    def _output(self, output: Any, content: _Content | None = None):
        out = self.prepare(output, role="output image")
        return out if content is None else images.resize_to(out, content.image.size)

    # ---- the metrics

    def score(self, output: Any, content: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> Scores:
        """All metrics of ``output`` against ``content`` and ``style`` (one image or a list of them,
        blended with ``style_blend`` weights as the engine blends them). Inputs: paths, PIL images,
        arrays or tensors."""
        c = self._content(content)
        styles = _blend(style, style_blend)
        grams, hist = self._target_grams(styles), self._target_hist(styles)
        out = self._output(output, c)
        feats = self.features(out, [EVAL_CONTENT_LAYER, *EVAL_STYLE_LAYERS])
        x = images.to_tensor(out)
        return Scores(
            content_distance=_content_distance(feats[EVAL_CONTENT_LAYER], c.features),
            style_distance=_style_distance(feats, grams),
            ssim=ssim_tensors(luminance(x), c.luma),
            histogram_distance=wasserstein_hist(histograms(out), hist),
            tv=tv_tensor(x),
        )

    def content_distance(self, output: Any, content: Any) -> float:
        c = self._content(content)
        feats = self.features(self._output(output, c), [EVAL_CONTENT_LAYER])
        return _content_distance(feats[EVAL_CONTENT_LAYER], c.features)

    def style_distance(self, output: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> float:
        grams = self._target_grams(_blend(style, style_blend))
        return _style_distance(self.features(self._output(output), EVAL_STYLE_LAYERS), grams)

    def ssim(self, output: Any, content: Any) -> float:
        c = self._content(content)
        return ssim_tensors(luminance(images.to_tensor(self._output(output, c))), c.luma)

    def histogram_distance(self, output: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> float:
        hist = self._target_hist(_blend(style, style_blend))
        return wasserstein_hist(histograms(self._output(output)), hist)

    def total_variation(self, output: Any) -> float:
        return tv_tensor(images.to_tensor(self._output(output)))


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


# ---------------------------------------------------------------------------------------------
# The default evaluator and the module-level functions over it


_shared = functools.lru_cache(maxsize=8)(Evaluator)


def shared_evaluator(size: int = EVAL_SIZE, device: str | torch.device = "cpu") -> Evaluator:
    """One evaluator per (size, device) in this process, shared by its callers (and so its cache).
    ``shared_evaluator()`` is the default evaluator, ``Evaluator()``, of the module functions."""
    return _shared(int(size), str(torch.device(device)))


def evaluator() -> VGGFeatures:
    """The default evaluator's network (embedded VGG19, max pooling, fp32, CPU)."""
    return shared_evaluator().network


def describe() -> str:
    """The default evaluator in words (for reports)."""
    return shared_evaluator().describe()


def score(output: Any, content: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> Scores:
    """:meth:`Evaluator.score` of the default evaluator."""
    return shared_evaluator().score(output, content, style, style_blend=style_blend)


def content_distance(output: Any, content: Any) -> float:
    return shared_evaluator().content_distance(output, content)


def style_distance(output: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> float:
    return shared_evaluator().style_distance(output, style, style_blend=style_blend)


def ssim(output: Any, content: Any) -> float:
    return shared_evaluator().ssim(output, content)


def histogram_distance(output: Any, style: Any, *, style_blend: Sequence[float] | None = None) -> float:
    return shared_evaluator().histogram_distance(output, style, style_blend=style_blend)


def total_variation(output: Any) -> float:
    return shared_evaluator().total_variation(output)


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
