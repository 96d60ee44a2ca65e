"""The objective evaluated tile by tile: memory bounded by the tile, not the image.

Every term of :class:`~restyle.engine.objective.Objective` is a sum over feature positions of
something that needs only that position's features and a few *global* numbers: the content
term is local; a style layer's loss is a function of its Gram matrix ``G = Σ_p f_p f_pᵀ / n``
(guided: one mask-weighted sum per region; Wasserstein-2: the sums ``Σ f`` and ``Σ f fᵀ``), and
its gradient at position p is ``(D + Dᵀ) f_p`` (``+ d₁``) with ``D = ∂L/∂(Σ f fᵀ)`` a C x C matrix.
So one evaluation is

- pass 1 (forward, no graph): each tile, cropped with a halo, through the backbone; the content
  loss of the tile's interior and the interior's contribution to each style layer's sums;
- pass 2 (backward, only when a gradient is asked for): each tile again with a graph; the
  interior features' gradient from the global sums, backpropagated to the crop's pixels, and the
  crop's whole gradient added to the image's.

Halo: the reach of the deepest layer used (85 px for VGG up to block5_conv1: 70 px left/up,
85 px right/down), rounded up to the stride of that layer (96 px), and tile edges on that
stride, so every interior feature is computed from exactly the pixels (and pooling windows) it
is computed from in the whole image. Each feature position belongs to one tile's interior, and
its derivative with respect to every pixel lies inside that tile's crop: adding the crops'
gradients gives the whole image's gradient (not only the interior pixels': that would need
the features of the halo exact too, i.e. twice the halo). Differences from the untiled
objective are rounding (sums in another order; measured in tests/engine/test_tiled.py).

Total variation, the matting term (photo mode) and the extra terms (video) are computed on the
whole image: they hold image-sized buffers only (no network activations). The matting
Laplacian, 25 non-zeros a pixel, is the largest of them (see docs/large.md).

:class:`TiledFeatures` is the backbone's features computed the same way, for a stage's targets:
content features assembled from tiles, style Grams (or means and covariances) summed over tiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn as nn

from restyle.engine.objective import Features, LayerTerms, Losses, Objective, Photorealism, TotalVariation, weighted
from restyle.engine.tiles import Moments, Tile, TiledFeatures, strides, tiles
from restyle.errors import ConfigError
from restyle.nn import network
from restyle.nn.losses import ContentLoss, MomentLoss


class StyleStatistics:
    """One style layer's moments over the whole image, summed tile by tile, and its loss as a
    function of them (the loss module's own :meth:`~restyle.nn.losses.MomentLoss.from_moments`)."""

    def __init__(self, loss: nn.Module, shape: tuple[int, int, int], device: torch.device):
        c, h, w = shape
        if not hasattr(loss, "moment_spec"):
            raise ConfigError(f"tiling does not support the style loss {type(loss).__name__}")
        self.loss = cast(MomentLoss, loss)
        self.channels, self.count = c, h * w
        spec = self.loss.moment_spec()
        self.moments = Moments(spec.weights, c, spec.first, spec.dtype, device)

    def value(self, s2: Sequence[torch.Tensor], s1: torch.Tensor | None) -> torch.Tensor:
        return self.loss.from_moments(s2, s1, self.channels, self.count)

    def evaluate(self) -> torch.Tensor:
        return self.value(self.moments.s2, self.moments.s1)

    def gradients(self, coef: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """``coef · ∂loss/∂(each sum)``."""
        with torch.enable_grad():
            s2 = [s.detach().requires_grad_(True) for s in self.moments.s2]
            s1 = None if self.moments.s1 is None else self.moments.s1.detach().requires_grad_(True)
            leaves = s2 + ([s1] if s1 is not None else [])
            grads = torch.autograd.grad(self.value(s2, s1) * coef.to(s2[0].dtype), leaves)
        return list(grads[:len(s2)]), (grads[-1] if s1 is not None else None)

# ---- the tiled objective ------------------------------------------------------------------------
@dataclass
class Pass1:
    """What pass 1 leaves for pass 2: each style layer's statistics."""

    style: dict[str, StyleStatistics]


class _TiledLosses(torch.autograd.Function):
    """(total, content, style, tv, photo) of the image: forward = pass 1, backward = pass 2 with
    each output's incoming gradient folded into the terms' coefficients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, objective: TiledObjective) -> Losses:
        losses, state = objective.evaluate(x)
        ctx.objective, ctx.state = objective, state
        ctx.save_for_backward(x)
        return losses

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return ctx.objective.gradient(x, ctx.state, grads), None


class TiledObjective(Objective):
    """:class:`Objective` with the same terms, evaluated in tiles of ``tile`` pixels (interior
    side; each read with the halo of the deepest layer). ``forward(x)`` returns the same
    5-tuple, differentiable w.r.t. ``x``; the gradient is computed when asked for (pass 2)."""

    def __init__(self, features: Features, content: LayerTerms, style: LayerTerms, tv: TotalVariation,
                 photo: Photorealism | None = None, *, tile: int):
        super().__init__(features, content, style, tv, photo)
        if not hasattr(self, "extra"):  # an Objective without extra terms (before the video engine's)
            self.extra = nn.ModuleList()
        self.tile = tile
        self.halo, self.stride = network.halo(features.backbone, self.layers)
        self.strides = strides(features.backbone, self.layers)

    @classmethod
    def wrap(cls, objective: Objective, tile: int) -> TiledObjective:
        """The same terms (shared, not copied) evaluated in tiles."""
        features = objective.features
        if isinstance(features, TiledFeatures):  # the targets' extractor: the tiles are this objective's
            features = features.base
        tiled = cls(features, objective.content, objective.style, objective.tv, objective.photo, tile=tile)
        tiled.extra.extend(getattr(objective, "extra", ()))
        return tiled

    def tiles(self, x: torch.Tensor) -> list[Tile]:
        return tiles((int(x.shape[-2]), int(x.shape[-1])), self.tile, self.halo, self.stride)

    def forward(self, x: torch.Tensor) -> Losses:
        return cast(Losses, _TiledLosses.apply(x, self))

    # pass 1
    def evaluate(self, x: torch.Tensor) -> tuple[Losses, Pass1]:
        x = x.detach()
        content_values = {n: x.new_zeros((), dtype=torch.float32) for n in self.content.losses}
        style: dict[str, StyleStatistics] = {}
        for tile in self.tiles(x):
            with torch.no_grad():
                feats = self.features(tile.crop_of(x), self.layers)
            for n, loss in self.content.losses.items():
                local, whole = tile.at(self.strides[n])
                content_values[n] += _content_sum(cast(ContentLoss, loss), feats[n][..., local[0], local[1]], whole)
            for n, loss in self.style.losses.items():
                local, whole = tile.at(self.strides[n])
                f = feats[n][..., local[0], local[1]]
                if n not in style:
                    h, w = (int(x.shape[-2]) // self.strides[n], int(x.shape[-1]) // self.strides[n])
                    style[n] = StyleStatistics(loss, (f.shape[1], h, w), x.device)
                style[n].moments.add(f, whole)
            del feats
        with torch.no_grad():
            content = weighted(self.content.layer_weights, {n: v * cast(ContentLoss, self.content.losses[n]).scale
                                                            for n, v in content_values.items()})
            style_value = weighted(self.style.layer_weights, {n: s.evaluate() for n, s in style.items()})
            tv = self.tv(x)
            total = self.content.weight * content + self.style.weight * style_value + self.tv.weight * tv
            photo = torch.zeros((), device=x.device)
            if self.photo is not None:
                photo = self.photo(x)
                total = total + self.photo.weight * photo
            for term in self.extra:
                total = total + term.weight * term(x)
        return (total, content, style_value, tv, photo), Pass1(style)

    # pass 2
    def gradient(self, x: torch.Tensor, state: Pass1, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """``∂/∂x`` of ``Σ grads[i] · outputs[i]`` (outputs: total, content, style, tv, photo)."""
        g_total, g_content, g_style, g_tv, g_photo = (g.detach().float() for g in grads)
        coef_content = g_total * self.content.weight + g_content
        coef_style = g_total * self.style.weight + g_style
        out = torch.zeros_like(x, dtype=torch.float32)
        c_norm = sum(self.content.layer_weights.values()) or 1.0
        s_norm = sum(self.style.layer_weights.values()) or 1.0
        d_style = {n: s.gradients(coef_style * (self.style.layer_weights[n] / s_norm)) for n, s in state.style.items()}
        for tile in self.tiles(x):
            crop = tile.crop_of(x).detach().requires_grad_(True)
            with torch.enable_grad():
                feats = self.features(crop, self.layers)
            outs, feature_grads = [], []
            for n in self.layers:
                f = feats[n]
                local, whole = tile.at(self.strides[n])
                inner = f[..., local[0], local[1]].detach()
                g = torch.zeros_like(f)
                if n in self.content.losses:
                    loss = cast(ContentLoss, self.content.losses[n])
                    target = loss.target[..., whole[0], whole[1]]
                    scale = coef_content * (self.content.layer_weights[n] / c_norm) * loss.scale * 2.0
                    g[..., local[0], local[1]] += ((inner.float() - target) * scale).to(g.dtype)
                if n in d_style:
                    d2, d1 = d_style[n]
                    g[..., local[0], local[1]] += state.style[n].moments.feature_grad(inner, whole, d2, d1)
                outs.append(f)
                feature_grads.append(g)
            torch.autograd.backward(outs, feature_grads)
            assert crop.grad is not None
            tile.crop_of(out).add_(crop.grad)
            del feats, outs, feature_grads
        _add_tv_grad(out, x.detach().float(), g_total * self.tv.weight + g_tv)
        whole_terms: list[tuple[nn.Module, torch.Tensor]] = [(term, g_total * cast(float, term.weight)) for term in self.extra]
        if self.photo is not None:
            whole_terms.insert(0, (self.photo, g_total * self.photo.weight + g_photo))
        if whole_terms:
            leaf = x.detach().requires_grad_(True)
            with torch.enable_grad():
                value = sum(coef * term(leaf) for term, coef in whole_terms)
                (g,) = torch.autograd.grad(cast(torch.Tensor, value), leaf)
            out += g
        return out.to(x.dtype)


def _content_sum(loss: ContentLoss, f: torch.Tensor, whole: tuple[slice, slice]) -> torch.Tensor:
    """``Σ (F − P)²`` over a tile's interior (the loss without its scale)."""
    return (f.float() - loss.target[..., whole[0], whole[1]]).pow(2).sum()


def _add_tv_grad(out: torch.Tensor, x: torch.Tensor, coef: torch.Tensor) -> None:
    """``out += coef · ∂ tv_loss(x)/∂x`` (mean squared neighbour differences), one temporary."""
    for dim in (-1, -2):
        n = x.shape[dim]
        if n < 2:
            continue
        d = x.narrow(dim, 1, n - 1) - x.narrow(dim, 0, n - 1)
        d.mul_(coef * (2.0 / d.numel()))
        out.narrow(dim, 1, n - 1).add_(d)
        out.narrow(dim, 0, n - 1).sub_(d)
