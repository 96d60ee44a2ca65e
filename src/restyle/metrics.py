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

Metrics (:data:`METRICS`; formulas and anchors in ``docs/metrics.md``): content_distance (1 −
correlation of channel-centred block4_conv2 features; 0 same, ~0.9 unrelated), style_distance
(relative Gram distance, mean of all 16 VGG19 convs; per layer in ``style_by_layer``), ssim,
histogram_distance (colour, to the style), tv.

>>> from restyle.metrics import score
>>> score("out.png", "photo.jpg", "painting.jpg").as_dict()
{'content_distance': 0.55, 'style_distance': 0.3, 'ssim': 0.5, 'histogram_distance': 0.03, 'tv': 0.05, 'style_by_layer': {...}}
>>> Evaluator(size=128).score("out.png", "photo.jpg", "painting.jpg")   # a smaller, faster evaluator

Also ``restyle score OUT.png [--content C] [--style S] [--json]``.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from restyle.errors import ConfigError
from restyle.io import images
from restyle.nn.controls import LUMA, luminance  # noqa: F401  (re-exported, as the metrics' luminance)
from restyle.nn.imagestats import (  # noqa: F401  (re-exported: the metrics on prepared data)
    HIST_BINS,
    SSIM_C1,
    SSIM_C2,
    SSIM_SIGMA,
    SSIM_WINDOW,
    histograms,
    ssim_tensors,
    tv_tensor,
    wasserstein_hist,
)
from restyle.nn.losses import EPS, gram
from restyle.spec import CONV_NAMES

if TYPE_CHECKING:
    from restyle.nn.vgg import VGGFeatures

#: Longest side (pixels) every image is resized to before it is scored, by default.
EVAL_SIZE = 256
#: The evaluator's content layer (Gatys et al. 2016's) and style layers: every conv layer of
#: VGG19, equally weighted, so that no compared layer set is graded on exactly the layers it
#: optimises (the Gatys set, blockN_conv1, is 5 of the 16; docs/metrics.md).
EVAL_CONTENT_LAYER = "block4_conv2"
EVAL_STYLE_LAYERS = tuple(CONV_NAMES["vgg19"])
#: Per-file results (content, Gram matrices, histograms) an evaluator keeps.
CACHE_SIZE = 64


@dataclass(frozen=True)
class MetricInfo:
    name: str
    better: str  # "lower" or "higher"
    summary: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("content_distance", "lower", f"1 - correlation of VGG19 {EVAL_CONTENT_LAYER} features with the "
               "content's (0 same, ~0.9 unrelated)"),
    MetricInfo("style_distance", "lower", "relative Gram-matrix distance to the style, mean of all 16 VGG19 convs"),
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
    #: The style distance of each of ``EVAL_STYLE_LAYERS`` (style_distance is their mean).
    style_by_layer: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The metrics by name (floats), and ``style_by_layer`` (layer -> float) where known."""
        out: dict[str, Any] = asdict(self)
        if not self.style_by_layer:
            out.pop("style_by_layer")
        return out


# ---------------------------------------------------------------------------------------------
# The metrics on prepared data


def style_by_layer(feats: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per style layer, ‖G(out) − G(style)‖² / ‖G(style)‖²."""
    return {n: float((gram(feats[n]) - target[n]).pow(2).sum() / (target[n].pow(2).sum() + EPS))
            for n in EVAL_STYLE_LAYERS}


def _style_distance(feats: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> float:
    values = list(style_by_layer(feats, target).values())
    return sum(values) / len(values)


def content_correlation_distance(feat: torch.Tensor, target: torch.Tensor) -> float:
    """``1 − ⟨f, t⟩ / (‖f‖ ‖t‖)`` with each channel of both centred over the positions: 0 for the
    same features (or the same up to a per-channel offset and a common scale), about 0.9 for an
    unrelated photo, noise or a blank image (docs/metrics.md), up to 2 for opposite ones."""
    f = feat.double() - feat.double().mean(dim=(-2, -1), keepdim=True)
    t = target.double() - target.double().mean(dim=(-2, -1), keepdim=True)
    # 1 − cos(f, t) = ½‖f/‖f‖ − t/‖t‖‖²: exactly 0 for equal features.
    return float(0.5 * (f / (f.norm() + EPS) - t / (t.norm() + EPS)).pow(2).sum())


def _content_distance(feat: torch.Tensor, target: torch.Tensor) -> float:
    return content_correlation_distance(feat, target)


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
                f"content: 1 - correlation of channel-centred {EVAL_CONTENT_LAYER} features; style: "
                f"relative Gram distance, mean of all {len(EVAL_STYLE_LAYERS)} conv layers "
                f"({EVAL_STYLE_LAYERS[0]}..{EVAL_STYLE_LAYERS[-1]}), equal weights")

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
        by_layer = style_by_layer(feats, grams)
        return Scores(
            content_distance=_content_distance(feats[EVAL_CONTENT_LAYER], c.features),
            style_distance=sum(by_layer.values()) / len(by_layer),
            ssim=ssim_tensors(luminance(x), c.luma),
            histogram_distance=wasserstein_hist(histograms(out), hist),
            tv=tv_tensor(x),
            style_by_layer=by_layer,
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
