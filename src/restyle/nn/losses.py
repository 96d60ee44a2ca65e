"""Loss terms: content (feature MSE), style (Gram matrices), total variation.

Content and style terms are *relative*: each layer's squared error is divided by the squared
norm of its target, so a layer's loss is 1.0 when the output is as far from the target as
zero is, whatever the layer's feature scale or the backbone's input convention. The weights
``content_weight``/``style_weight``/``tv_weight`` therefore keep their meaning when the model,
the layers or the image size change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
import torch.nn as nn

EPS = 1e-8


@dataclass(frozen=True)
class MomentSpec:
    """The sums over feature positions a style loss is a function of: ``Σ_p w_p f_p f_pᵀ`` for each
    weighting in ``weights`` (None: every position weighs 1; a region's mask at the layer's
    resolution), and ``Σ_p f_p`` when ``first``; accumulated in ``dtype``."""

    weights: Sequence[torch.Tensor | None]
    first: bool = False
    dtype: torch.dtype = torch.float32


class MomentLoss(Protocol):
    """A style loss written over the whole image's moments, so that tiling can evaluate it from sums
    accumulated tile by tile (:mod:`restyle.engine.tiled`). Every style loss implements it:
    ``moment_spec()`` names the sums; ``from_moments(s2, s1, channels, count)`` is the loss from
    them (``s2`` one ``C x C`` sum per weighting, ``s1`` the first-moment sum or None, ``count``
    the layer's feature positions), differentiable w.r.t. the sums and equal to ``forward`` of the
    whole image's features up to rounding."""

    def moment_spec(self) -> MomentSpec: ...

    def from_moments(self, s2: Sequence[torch.Tensor], s1: torch.Tensor | None, channels: int,
                     count: int) -> torch.Tensor: ...


def _feature_matrix(features: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``features`` (B x C x H x W) as a batch of matrices without a copy: (B x H·W x C, True) for
    channels-last memory, else (B x C x H·W, False)."""
    b, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(b, h * w, c), True
    return features.reshape(b, c, h * w), False


#: Pixels' worth of features converted to fp32 at a time when a Gram matrix is formed from
#: lower-precision features: the fp32 copy of block1_conv1 at 2048² would be 1 GiB at once.
GRAM_CHUNK_ELEMENTS = 2**24


def _gram_of(m: torch.Tensor, rows_are_pixels: bool) -> torch.Tensor:
    """``MᵀM`` (rows are pixels) or ``MMᵀ``, in at least fp32; features of lower precision are
    converted in chunks of pixels (``GRAM_CHUNK_ELEMENTS``) whose Grams are summed in fp32."""
    dim = 1 if rows_are_pixels else 2
    pixels, channels = m.shape[dim], m.shape[3 - dim]
    step = max(1, GRAM_CHUNK_ELEMENTS // channels)
    if m.dtype not in (torch.bfloat16, torch.float16) or pixels <= step:
        f = _at_least_fp32(m)
        return torch.bmm(f.transpose(1, 2), f) if rows_are_pixels else torch.bmm(f, f.transpose(1, 2))
    out = None
    for chunk in m.split(step, dim=dim):
        f = chunk.float()
        a, b = (f.transpose(1, 2), f) if rows_are_pixels else (f, f.transpose(1, 2))
        out = torch.bmm(a, b) if out is None else out.baddbmm_(a, b)
    assert out is not None
    return out


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by feature size: ``F Fᵀ / (C·H·W)``, computed in fp32 (batch kept)."""
    b, c, h, w = features.shape
    m, rows_are_pixels = _feature_matrix(features)
    return _gram_of(m, rows_are_pixels) / (c * h * w)


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


class _GramDistance(torch.autograd.Function):
    """``‖G(F) − A‖² · scale`` with its gradient written out: ``dF = 4·scale/n · F (G − A)``.

    Autograd through ``bmm`` would keep an fp32 copy of F and run two fp32 matrix products
    backward; here the forward Gram is fp32 (as the loss needs), and the backward is one
    product in F's own dtype (bf16 under bf16: the convolutions' backward reads the gradient in
    bf16 anyway). 256² here: see docs/performance.md."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        n = c * h * w
        with torch.autocast(features.device.type, enabled=False):
            m, rows_are_pixels = _feature_matrix(features)
            residual = _gram_of(m, rows_are_pixels) / n - target
            loss = residual.pow(2).sum() * scale
        ctx.save_for_backward(features, residual, scale)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        features, residual, scale = ctx.saved_tensors
        b, c, h, w = features.shape
        # G − A is symmetric up to rounding; symmetrise so dF is exactly that of ‖G − A‖².
        coef = (residual + residual.transpose(1, 2)) * (grad * scale * 2.0 / (c * h * w))
        coef = coef.to(features.dtype)
        with torch.autocast(features.device.type, enabled=False):
            m, rows_are_pixels = _feature_matrix(features)
            if rows_are_pixels:  # M: B x HW x C (channels-last) -> dM = M · coef, viewed back as B x C x H x W
                dm = torch.bmm(m, coef)
                df = dm.reshape(b, h, w, c).permute(0, 3, 1, 2)
            else:  # M: B x C x HW -> dM = coef · M
                df = torch.bmm(coef, m).reshape(b, c, h, w)
        return df, None, None


def gram_distance(features: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``‖G(features) − target‖² · scale`` (G as :func:`gram`, fp32), with a fused backward."""
    if target.dim() == 2:
        target = target[None]
    return _GramDistance.apply(features, target, scale)


def masked_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Guided Gram matrix (Gatys et al. 2017): ``Σ_p m_p f_p f_pᵀ / (C·Σ_p m_p)``, the Gram of the
    features weighted by ``mask`` (``1 x 1 x H x W`` at the layer's resolution, values in [0,1])
    and normalised by the mask's sum, so a region's Gram does not depend on its area."""
    b, c, h, w = features.shape
    weight = mask.float().reshape(1, 1, h * w)
    f = features.float().reshape(b, c, h * w) * weight.sqrt()
    return torch.bmm(f, f.transpose(1, 2)) / (c * weight.sum().clamp_min(EPS))


class ContentLoss(nn.Module):
    """``‖F − P‖² / ‖P‖²`` at one layer (P: the content image's features)."""

    target: torch.Tensor
    scale: torch.Tensor

    def __init__(self, target: torch.Tensor):
        super().__init__()
        target = target.detach().float()
        self.register_buffer("target", target)
        self.register_buffer("scale", 1.0 / (target.pow(2).sum() + EPS))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features.float() - self.target).pow(2).sum() * self.scale


class StyleLoss(nn.Module):
    """``‖G(F) − A‖² / ‖A‖²`` at one layer, A the (blended) Gram matrix of the style image(s)."""

    target: torch.Tensor
    scale: torch.Tensor

    def __init__(self, target_gram: torch.Tensor):
        super().__init__()
        target_gram = target_gram.detach().float()
        self.register_buffer("target", target_gram)
        self.register_buffer("scale", 1.0 / (target_gram.pow(2).sum() + EPS))

    @staticmethod
    def blended_target(grams: list[torch.Tensor], blend: list[float]) -> torch.Tensor:
        total = sum(blend)
        return cast(torch.Tensor, sum(g * (w / total) for g, w in zip(grams, blend)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return gram_distance(features, self.target, self.scale)  # from_stats with a fused backward

    def from_stats(self, g: torch.Tensor) -> torch.Tensor:
        """The loss given the output's Gram matrix ``g``."""
        return (g - self.target).pow(2).sum() * self.scale

    def moment_spec(self) -> MomentSpec:
        return MomentSpec([None])

    def from_moments(self, s2: Sequence[torch.Tensor], s1: torch.Tensor | None, channels: int,
                     count: int) -> torch.Tensor:
        return self.from_stats(s2[0] / (channels * count))


class GuidedStyleLoss(nn.Module):
    """Spatially controlled style loss (Gatys et al. 2017): ``Σ_r a_r ‖G_r(F) − A_r‖² / ‖A_r‖²``,
    ``G_r`` the Gram guided by region r's mask at this layer, ``A_r`` region r's style target and
    ``a_r`` the share of the image the region covers. A mask of all ones gives :class:`StyleLoss`;
    pixels no mask covers get no style gradient."""

    def __init__(self, masks: list[torch.Tensor], targets: list[torch.Tensor]):
        super().__init__()
        self.masks = [m.detach().float() for m in masks]
        self.targets = [t.detach().float() for t in targets]
        self.scales = [1.0 / (t.pow(2).sum() + EPS) for t in self.targets]
        self.areas = [m.mean() for m in self.masks]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.from_stats([masked_gram(features, mask) for mask in self.masks])

    def from_stats(self, grams: Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss given each region's guided Gram matrix."""
        total = grams[0].new_zeros((), dtype=torch.float32)
        for g, target, scale, area in zip(grams, self.targets, self.scales, self.areas):
            total = total + area * (g - target).pow(2).sum() * scale
        return total

    def moment_spec(self) -> MomentSpec:
        return MomentSpec(self.masks)

    def from_moments(self, s2: Sequence[torch.Tensor], s1: torch.Tensor | None, channels: int,
                     count: int) -> torch.Tensor:
        return self.from_stats([s / (channels * mask.sum().clamp_min(EPS)) for s, mask in zip(s2, self.masks)])


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference between neighbouring pixels (image in [0,1])."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()
