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

from restyle.config import Config
from restyle.engine.loop import lbfgs_history
from restyle.engine.objective import Features, LayerTerms, Losses, Objective, Photorealism, TotalVariation, weighted
from restyle.engine.tiles import Moments, Tile, TiledFeatures, reach, strides, tiles
from restyle.errors import ConfigError
from restyle.nn.losses import EPS, ContentLoss, GuidedStyleLoss, StyleLoss
from restyle.nn.w2 import W2StyleLoss, trace_sqrt


class StyleStatistics:
    """One style layer's loss as a function of its :class:`Moments` (the layer's loss module's
    formula, written over the whole image's sums)."""

    def __init__(self, loss: nn.Module, shape: tuple[int, int, int], device: torch.device):
        c, h, w = shape
        self.loss, self.n = loss, c * h * w
        if isinstance(loss, StyleLoss):
            self.moments = Moments([None], c, False, torch.float32, device)
        elif isinstance(loss, GuidedStyleLoss):
            self.moments = Moments(loss.masks, c, False, torch.float32, device)
        elif isinstance(loss, W2StyleLoss):  # E[ffᵀ] − μμᵀ cancels: sums in float64
            self.moments = Moments([None], c, True, torch.float64, device)
        else:
            raise ConfigError(f"tiling does not support the style loss {type(loss).__name__}")

    def value(self, s2: Sequence[torch.Tensor], s1: torch.Tensor | None) -> torch.Tensor:
        loss = self.loss
        if isinstance(loss, StyleLoss):
            return (s2[0] / self.n - loss.target).pow(2).sum() * loss.scale
        if isinstance(loss, GuidedStyleLoss):
            total = s2[0].new_zeros(())
            c = s2[0].shape[0]
            for s, mask, target, scale, area in zip(s2, loss.masks, loss.targets, loss.scales, loss.areas):
                total = total + area * (s / (c * mask.sum().clamp_min(EPS)) - target).pow(2).sum() * scale
            return total
        assert isinstance(loss, W2StyleLoss) and s1 is not None
        count = self.n // s2[0].shape[0]
        mu64 = s1 / count
        mu, cov = mu64.float(), (s2[0] / count - torch.outer(mu64, mu64)).float()
        part = loss.cov_sqrt @ cov @ loss.cov_sqrt
        part = 0.5 * (part + part.T)
        dist = (mu - loss.mean).pow(2).sum() + cov.diagonal().sum() + loss.cov_trace \
            - 2.0 * trace_sqrt(part, loss.method)
        return dist * loss.scale

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
        names = features.names
        self.halo, self.stride = reach(names, self.layers)
        self.strides = strides(names, self.layers)

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




# ---- which stages are tiled, and with what tile --------------------------------------------------
#: Calibration of the memory estimate: the process without images, bytes held per activation
#: value of one untiled forward + backward (x its dtype's size), and image-sized float32 RGB
#: buffers besides the L-BFGS history (the image, its gradient, snapshots, the optimiser's
#: vectors). Fitted to the peak RSS of untiled bf16 CPU runs (1.35 GB at 1024x681, 3.71 GB at
#: 2048x1362: 0.55 GB + 1.2 KB a pixel; docs/large.md); tiled runs come out below their estimate.
#: A matting Laplacian takes about 25 x 12 bytes a pixel, twice that while it is built.
RUNTIME_BYTES = 0.55 * 2**30
ACTIVATION_BYTES = {"bf16": 2.0, "fp32": 4.0, "tf32": 4.0}
ACTIVATION_FACTOR = 1.6
IMAGE_BUFFERS = 12
MATTING_BYTES_PER_PIXEL = 600
#: On CUDA the estimate bounds what torch allocates, less the process's runtime (H200, bf16, 5
#: steps, docs/large.md: 3.49 GB allocated at 2048x1362 against 3.92 estimated, 13.26 against
#: 14.02 at 4096x2725; in 1024 px tiles 1.95 against 2.73 and 4.31 against 5.04). The card holds
#: the CUDA context and library workspaces besides (1.19 GB above torch's reserve in the 8192 px
#: run), so a CUDA budget is --max-memory less that. torch's caching allocator reserved 1.23x its
#: allocations there (17.56 GB for 14.29: freed blocks it kept, on a card with 139 GB free); it
#: releases them when an allocation would otherwise fail, so they are left out of the budget.
CUDA_CONTEXT_BYTES = 1.2 * 2**30
#: The smallest tile --max-memory chooses: below it most of each tile's pass is halo (a 256 px
#: tile with the default layers' 96 px halo reads 448x448, 3.1x its area); a budget that needs
#: smaller tiles is refused before the run (:func:`check_budget`).
MIN_AUTO_TILE = 256
#: The fewest L-BFGS pairs ``--max-memory`` shrinks a stage's history to before it tiles (or tiles
#: smaller). bench/history.py (256 px, 100 iterations, 2 photos; docs/large.md): final loss
#: against 50 pairs' +2.4% with 10 pairs, +2.8% with 5, +5.4% with 3, +11.9% with 2 (medians);
#: tiling costs 1.4-2.5x the time a step instead, so a few percent of loss is the better trade.
BUDGET_MIN_PAIRS = 3


def activation_values(features: Features, layers: Sequence[str]) -> dict[str, float]:
    """Per layer of a forward up to the deepest of ``layers``, its activation values per input
    pixel: channels / 4^(pools before it)."""
    names = features.names
    last = max(names.index(n) for n in layers)
    out, channels, area = {}, 3, 1.0
    for name in names[: last + 1]:
        if name.startswith("pool"):
            area /= 4
        else:
            channels = int(cast(nn.Conv2d, features.backbone.convs[name]).out_channels)
        out[name] = channels * area
    return out


def default_pairs(config: Config, size: tuple[int, int]) -> int:
    """L-BFGS pairs a stage of ``size`` keeps without a memory budget (0 for Adam)."""
    if config.optimizer == "adam":
        return 0
    return min(lbfgs_history(torch.empty(1, 3, *size, device="meta")), max(1, config.iterations - 1))


def estimate_bytes(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int],
                   tile: int | None = None, pairs: int | None = None) -> float:
    """Peak memory of a stage of ``size`` = (height, width), untiled or in tiles of ``tile``: the
    activations of the image or of one tile's crop, the image-sized buffers (the optimiser's
    history of ``pairs`` pairs included; None: :func:`default_pairs`) and the content targets
    (float32 feature maps of the whole image)."""
    h, w = size
    halo, _ = reach(features.names, layers)
    crop = h * w if tile is None else min(h, tile + 2 * halo) * min(w, tile + 2 * halo)
    image = 12.0 * h * w
    if config.optimizer == "adam":
        pairs = 1  # Adam's two moment buffers
    elif pairs is None:
        pairs = default_pairs(config, size)
    values = activation_values(features, layers)
    act = sum(values.values()) * ACTIVATION_BYTES.get(features.precision, 4.0) * ACTIVATION_FACTOR
    targets = 4.0 * sum(values[n] for n in config.content_layers if n in values) * h * w
    photo = MATTING_BYTES_PER_PIXEL * h * w if config.photo_weight > 0 else 0.0
    buffers = image * (IMAGE_BUFFERS + 2 * pairs + (0 if tile is None else 2))
    return RUNTIME_BYTES + act * crop + buffers + targets + photo


def memory_budget(config: Config, device: torch.device) -> float | None:
    """Bytes a stage's estimate may reach: ``--max-memory``; on CUDA what the context leaves of it,
    or the memory free for this run if that is less."""
    if config.max_memory is None:
        return None
    budget = config.max_memory * 2**30
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        usable = free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        budget = max(0.0, min(budget - CUDA_CONTEXT_BYTES, usable))
    return budget


def check_budget(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int]) -> None:
    """Refuse (one line, before the run) a ``--max-memory`` that the stage of ``size`` cannot keep
    even in ``MIN_AUTO_TILE`` px tiles with ``BUDGET_MIN_PAIRS`` L-BFGS pairs."""
    budget = memory_budget(config, features.device)
    if budget is None or config.tile is not None:
        return
    least = min(BUDGET_MIN_PAIRS, default_pairs(config, size))
    tile = MIN_AUTO_TILE if max(size) > MIN_AUTO_TILE else None
    need = estimate_bytes(config, features, layers, size, tile, least)
    if need > budget:
        where = (f" ({budget / 2**30:.1f} GB once the CUDA context's {CUDA_CONTEXT_BYTES / 2**30:.1f} GB is set aside)"
                 if features.device.type == "cuda" else "")
        raise ConfigError(f"--max-memory {config.max_memory:g} GB is too little for the {size[1]}x{size[0]} px stage"
                          f"{where}: {f'even in {tile} px tiles ' if tile else ''}it needs about {need / 2**30:.1f} GB "
                          f"(estimated); raise --max-memory or lower --size")


def choose_tile(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int],
                notes: list[str]) -> int | None:
    """The tile of a stage of ``size`` (None: untiled): ``--tile`` when the stage is larger;
    with ``--max-memory`` alone, none when the untiled estimate fits with at least
    ``BUDGET_MIN_PAIRS`` L-BFGS pairs, else the largest tile (the fewest tiles a side) whose
    estimate fits with them (:func:`history_pairs` then gives the history what is left)."""
    longest = max(size)
    if config.tile is not None:
        return config.tile if longest > config.tile else None
    budget = memory_budget(config, features.device)
    least = min(BUDGET_MIN_PAIRS, default_pairs(config, size))
    if budget is None or estimate_bytes(config, features, layers, size, pairs=least) <= budget:
        return None
    _, stride = reach(features.names, layers)
    tile = longest
    for count in range(2, longest // MIN_AUTO_TILE + 1):
        tile = max(MIN_AUTO_TILE, -(-longest // count // stride) * stride)
        if tile == MIN_AUTO_TILE or estimate_bytes(config, features, layers, size, tile, least) <= budget:
            break  # (a budget that even MIN_AUTO_TILE misses was refused before the run: check_budget)
    note = f"{longest} px stage tiled ({tile} px tiles) to stay within --max-memory {config.max_memory:g} GB"
    if note not in notes:
        notes.append(note)
    return tile


def history_pairs(config: Config, features: Features, layers: Sequence[str], size: tuple[int, int],
                  tile: int | None, notes: list[str]) -> int | None:
    """L-BFGS pairs a stage keeps: None (the default rule, :func:`~.loop.lbfgs_history`) without
    ``--max-memory``; with it, as many of those as fit in what the stage's other buffers leave of
    the budget, at least ``BUDGET_MIN_PAIRS`` (bench/history.py measured the cost: docs/large.md)."""
    budget = memory_budget(config, features.device)
    full = default_pairs(config, size)
    if budget is None or full == 0:
        return None
    rest = budget - estimate_bytes(config, features, layers, size, tile, pairs=0)
    pairs = max(min(BUDGET_MIN_PAIRS, full), min(full, int(rest // (24.0 * size[0] * size[1]))))
    if pairs < full:
        note = f"{max(size)} px stage: {pairs} L-BFGS pairs (not {full}) to stay within --max-memory"
        if note not in notes:
            notes.append(note)
    return pairs


def stage_features(config: Config, features: Features, layers: Sequence[str], image: Any,
                   notes: list[str]) -> Features:
    """The extractor of a stage whose content image is ``image`` (PIL image or tensor): ``features``
    itself, or a :class:`TiledFeatures` when the stage is tiled (:func:`choose_tile`)."""
    size = (int(image.shape[-2]), int(image.shape[-1])) if isinstance(image, torch.Tensor) else \
        (int(image.size[1]), int(image.size[0]))
    tile = choose_tile(config, features, layers, size, notes)
    if tile is None:
        return features
    halo, stride = reach(features.names, layers)
    note = (f"{max(size)} px stage: {len(tiles(size, tile, halo, stride))} tiles of up to {tile} px, "
            f"each read with a {halo} px halo")
    if note not in notes:
        notes.append(note)
    return TiledFeatures(features, tile)


def stage_objective(objective: Objective, features: Features) -> Objective:
    """The objective the stage optimises: tiled when its extractor is."""
    return TiledObjective.wrap(objective, features.tile) if isinstance(features, TiledFeatures) else objective
