"""Feature transforms of universal style transfer: they give a photo's VGG features a painting's
statistics while keeping their spatial layout.

- :func:`whiten_colour` (Li et al. 2017, WCT): whitens the content features (removes their
  covariance) and colours them with the style features' covariance and mean.
- :func:`adain` (Huang & Belongie 2017): matches each channel's mean and standard deviation.

Both take ``C x H x W`` (or ``1 x C x H x W``) features and work in float32 (the covariance's
eigendecomposition needs it), whatever the features' dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Eigenvalues below this fraction of the largest are dropped (the painting's feature covariance is
#: rank-deficient where channels never fire; their inverse square roots would blow up noise).
EIG_FLOOR = 1e-5


def _flat(features: torch.Tensor) -> torch.Tensor:
    f = features.float()
    if f.ndim == 4:
        if f.shape[0] != 1:
            raise ValueError("one image at a time")
        f = f[0]
    return f.reshape(f.shape[0], -1)


class Moments:
    """A painting's feature statistics at one layer: the channel mean and the covariance's
    eigenbasis, computed once so that many photos (a video's frames) reuse them."""

    def __init__(self, features: torch.Tensor):
        f = _flat(features)
        self.mean = f.mean(1, keepdim=True)
        self.std = f.std(1, keepdim=True).clamp_min(1e-5)
        cov = torch.cov(f)
        vals, vecs = torch.linalg.eigh(cov)
        keep = vals > vals.max() * EIG_FLOOR
        self.colour = vecs[:, keep] @ torch.diag(vals[keep].sqrt()) @ vecs[:, keep].T


def whiten_colour(content: torch.Tensor, style: Moments) -> torch.Tensor:
    """``content``'s features whitened, then coloured with ``style``'s covariance and mean (same
    shape as ``content``, float32)."""
    f = _flat(content)
    mean = f.mean(1, keepdim=True)
    centred = f - mean
    vals, vecs = torch.linalg.eigh(torch.cov(f))
    keep = vals > vals.max() * EIG_FLOOR
    whitened = vecs[:, keep] @ torch.diag(vals[keep].rsqrt()) @ (vecs[:, keep].T @ centred)
    out = style.colour @ whitened + style.mean
    return out.reshape(content.shape[-3:]).reshape(content.shape)


def adain(content: torch.Tensor, style: Moments) -> torch.Tensor:
    """``content``'s features with each channel's mean and standard deviation set to ``style``'s."""
    f = _flat(content)
    mean, std = f.mean(1, keepdim=True), f.std(1, keepdim=True).clamp_min(1e-5)
    out = (f - mean) / std * style.std + style.mean
    return out.reshape(content.shape[-3:]).reshape(content.shape)


TRANSFORMS = {"wct": whiten_colour, "adain": adain}


def transfer(content: torch.Tensor, styles: Sequence[Moments], weights: Sequence[float], strength: float = 1.0,
             transform: str = "wct") -> torch.Tensor:
    """The transformed features: each style's transform weighted by ``weights`` (summing to 1),
    mixed with the content's own features by ``strength`` (0: the photo, 1: the full transfer)."""
    fn = TRANSFORMS[transform]
    c = content.float()
    mixed = sum(w * fn(c, s) for s, w in zip(styles, weights) if w > 0)
    assert isinstance(mixed, torch.Tensor)
    return strength * mixed + (1 - strength) * c
