"""Loss terms: content (feature MSE), style (Gram matrices), total variation.

Content and style terms are *relative*: each layer's squared error is divided by the squared
norm of its target, so a layer's loss is 1.0 when the output is as far from the target as
zero is, whatever the layer's feature scale or the backbone's input convention. The weights
``content_weight``/``style_weight``/``tv_weight`` therefore keep their meaning when the model,
the layers or the image size change.
"""

from __future__ import annotations

import torch
import torch.nn as nn

EPS = 1e-8


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by feature size: ``F Fᵀ / (C·H·W)``, computed in fp32 (batch kept)."""
    b, c, h, w = features.shape
    f = features.float()
    if c > 1 and f.is_contiguous(memory_format=torch.channels_last):
        # Channels-last features are (H·W) x C matrices in memory: G = Mᵀ M without a reshape copy.
        m = f.permute(0, 2, 3, 1).reshape(b, h * w, c)
        return torch.bmm(m.transpose(1, 2), m) / (c * h * w)
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


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

    def __init__(self, target: torch.Tensor):
        super().__init__()
        target = target.detach().float()
        self.register_buffer("target", target)
        self.register_buffer("scale", 1.0 / (target.pow(2).sum() + EPS))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features.float() - self.target).pow(2).sum() * self.scale


class StyleLoss(nn.Module):
    """``‖G(F) − A‖² / ‖A‖²`` at one layer, A the (blended) Gram matrix of the style image(s)."""

    def __init__(self, target_gram: torch.Tensor):
        super().__init__()
        target_gram = target_gram.detach().float()
        self.register_buffer("target", target_gram)
        self.register_buffer("scale", 1.0 / (target_gram.pow(2).sum() + EPS))

    @staticmethod
    def blended_target(grams: list[torch.Tensor], blend: list[float]) -> torch.Tensor:
        total = sum(blend)
        return sum(g * (w / total) for g, w in zip(grams, blend))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (gram(features) - self.target).pow(2).sum() * self.scale


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
        total = features.new_zeros((), dtype=torch.float32)
        for mask, target, scale, area in zip(self.masks, self.targets, self.scales, self.areas):
            total = total + area * (masked_gram(features, mask) - target).pow(2).sum() * scale
        return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference between neighbouring pixels (image in [0,1])."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()
