"""Tiles of an image for the backbone: where they are, and the features and style statistics of
a whole image computed tile by tile (see :mod:`restyle.engine.tiled` for the objective).

A tile is an interior (tiles' interiors partition the image, their edges on the stride of the
deepest layer used) and a crop: the interior with a halo of the deepest layer's reach, so that
every interior feature is computed from exactly the pixels and pooling windows it is computed
from in the whole image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from restyle.engine.objective import Features
from restyle.nn import network
from restyle.nn.losses import EPS
from restyle.nn.network import Backbone

#: Pixels' worth of features converted to the accumulation dtype at a time (as nn.losses does).
CHUNK_ELEMENTS = 2**24


# ---- geometry ---------------------------------------------------------------------------------
def spans(length: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """``length`` pixels cut into ceil(length / tile) near-equal spans, edges on ``stride``."""
    units = -(-length // stride)
    count = max(1, -(-length // max(tile, stride)))
    per = -(-units // count)
    edges = [min(length, i * per * stride) for i in range(count)] + [length]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


@dataclass(frozen=True)
class Tile:
    """One tile: its interior (y0, y1, x0, x1) and the crop read for it (interior + halo)."""

    inner: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    size: tuple[int, int]  # the whole image's (height, width)

    def crop_of(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.crop
        return x[..., y0:y1, x0:x1]

    def at(self, stride: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """The interior at a layer of ``stride``: (rows, cols) in the crop's features, and the
        same positions in the whole image's features (which are ``size // stride`` positions)."""
        (y0, y1, x0, x1), (cy, _, cx, _) = self.inner, self.crop
        h, w = self.size
        r0, r1 = y0 // stride, (h // stride if y1 == h else y1 // stride)
        c0, c1 = x0 // stride, (w // stride if x1 == w else x1 // stride)
        oy, ox = cy // stride, cx // stride
        return (slice(r0 - oy, r1 - oy), slice(c0 - ox, c1 - ox)), (slice(r0, r1), slice(c0, c1))


def tiles(size: tuple[int, int], tile: int, halo: int, stride: int) -> list[Tile]:
    h, w = size
    return [Tile((y0, y1, x0, x1), (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)), size)
            for y0, y1 in spans(h, tile, stride) for x0, x1 in spans(w, tile, stride)]


def strides(backbone: Backbone, layers: Sequence[str]) -> dict[str, int]:
    """Each layer's stride (input pixels between its feature positions)."""
    return {n: backbone.info[n].stride for n in layers}


# ---- moments: Σ w f fᵀ and Σ f over a tile's interior, and their gradient -----------------------
def pixel_rows(f: torch.Tensor) -> torch.Tensor:
    """``1 x C x h x w`` features as an ``h·w x C`` matrix."""
    return f[0].permute(1, 2, 0).reshape(-1, f.shape[1])


def add_moments(m: torch.Tensor, weight: torch.Tensor | None, s2: torch.Tensor, s1: torch.Tensor | None) -> None:
    """``s2 += Σ_p w_p f_p f_pᵀ`` and ``s1 += Σ_p f_p`` (rows of ``m`` are the f_p), in ``s2``'s
    dtype, converted a chunk of pixels at a time."""
    step = max(1, CHUNK_ELEMENTS // max(1, m.shape[1]))
    for i in range(0, m.shape[0], step):
        f = m[i:i + step].to(s2.dtype)
        s2.addmm_(f.t(), f if weight is None else f * weight[i:i + step].to(s2.dtype))
        if s1 is not None:
            s1.add_(f.sum(0))


class Moments:
    """What one style layer's loss needs from the whole image: ``Σ_p w_p f_p f_pᵀ`` for each of
    its pixel weightings (None: 1; a region's mask), and ``Σ_p f_p`` if ``first``."""

    def __init__(self, weights: Sequence[torch.Tensor | None], channels: int, first: bool,
                 dtype: torch.dtype, device: torch.device):
        self.weights = list(weights)
        self.s2 = [torch.zeros(channels, channels, dtype=dtype, device=device) for _ in self.weights]
        self.s1 = torch.zeros(channels, dtype=dtype, device=device) if first else None

    def add(self, f: torch.Tensor, whole: tuple[slice, slice]) -> None:
        """Add a tile's interior features ``f`` (at ``whole`` in the whole image's layer)."""
        m = pixel_rows(f)
        for k, (w, s2) in enumerate(zip(self.weights, self.s2)):
            add_moments(m, None if w is None else pixel_rows(w[..., whole[0], whole[1]]), s2, self.s1 if k == 0 else None)

    def feature_grad(self, f: torch.Tensor, whole: tuple[slice, slice], d2: Sequence[torch.Tensor],
                     d1: torch.Tensor | None) -> torch.Tensor:
        """``∂/∂f_p`` of ``Σ_k <D_k, s2_k> + <d₁, s1>``: ``Σ_k w_p (D_k + D_kᵀ) f_p + d₁``, in f's dtype."""
        m = pixel_rows(f)
        out = torch.zeros_like(m)
        for w, d in zip(self.weights, d2):
            part = m @ (d + d.t()).to(m.dtype)
            out += part if w is None else part * pixel_rows(w[..., whole[0], whole[1]]).to(m.dtype)
        if d1 is not None:
            out += d1.to(m.dtype)
        return out.reshape(f.shape[2], f.shape[3], f.shape[1]).permute(2, 0, 1)[None]


# ---- the targets' features, tile by tile ---------------------------------------------------------
class TiledFeatures(Features):
    """The backbone's features of an image computed in tiles (no graph): whole feature maps
    assembled from the tiles' interiors (``__call__``), or the style statistics summed over them
    (:meth:`grams`, :meth:`mean_covs`) without the maps."""

    def __init__(self, base: Features, tile: int):
        super().__init__(base.backbone, base.device, base.precision)
        self.base, self.tile = base, tile

    def _tiles(self, image: torch.Tensor, layers: Sequence[str]) -> tuple[list[Tile], dict[str, int]]:
        halo, stride = network.halo(self.backbone, layers)
        return tiles((int(image.shape[-2]), int(image.shape[-1])), self.tile, halo, stride), strides(self.backbone, layers)

    def _each(self, image: torch.Tensor, layers: Sequence[str],
              visit: Callable[[str, torch.Tensor, tuple[slice, slice]], None]) -> dict[str, int]:
        parts, stride = self._tiles(image, layers)
        for tile in parts:
            with torch.no_grad():
                feats = Features.__call__(self, tile.crop_of(image), layers)
            for n in layers:
                local, whole = tile.at(stride[n])
                visit(n, feats[n][..., local[0], local[1]], whole)
            del feats
        return stride

    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        h, w = int(image.shape[-2]), int(image.shape[-1])
        stride = strides(self.backbone, layers)

        def put(n: str, f: torch.Tensor, whole: tuple[slice, slice]) -> None:
            if n not in out:
                out[n] = f.new_zeros((1, f.shape[1], h // stride[n], w // stride[n]))
            out[n][..., whole[0], whole[1]] = f

        self._each(image, layers, put)
        return out

    def grams(self, image: torch.Tensor, layers: Sequence[str],
              masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Per layer, :func:`~restyle.nn.losses.gram` of the image's features, or with ``masks``
        (a layer's mask at its resolution) :func:`~restyle.nn.losses.masked_gram`."""
        acc: dict[str, Moments] = {}

        def add(n: str, f: torch.Tensor, whole: tuple[slice, slice]) -> None:
            if n not in acc:
                acc[n] = Moments([None if masks is None else masks[n]], f.shape[1], False, torch.float32, f.device)
            acc[n].add(f, whole)

        stride = self._each(image, layers, add)
        h, w = int(image.shape[-2]), int(image.shape[-1])
        out = {}
        for n, m in acc.items():
            c = m.s2[0].shape[0]
            denom = c * (h // stride[n]) * (w // stride[n]) if masks is None else c * masks[n].float().sum().clamp_min(EPS)
            out[n] = (m.s2[0] / denom)[None]
        return out

    def mean_covs(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, :func:`~restyle.nn.w2.mean_cov` of the image's features."""
        acc: dict[str, Moments] = {}

        def add(n: str, f: torch.Tensor, whole: tuple[slice, slice]) -> None:
            if n not in acc:
                acc[n] = Moments([None], f.shape[1], True, torch.float64, f.device)
            acc[n].add(f, whole)

        stride = self._each(image, layers, add)
        h, w = int(image.shape[-2]), int(image.shape[-1])
        out = {}
        for n, m in acc.items():
            assert m.s1 is not None
            count = (h // stride[n]) * (w // stride[n])
            mu = m.s1 / count
            out[n] = (mu.float(), (m.s2[0] / count - torch.outer(mu, mu)).float())
        return out
