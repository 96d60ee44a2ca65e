"""The objective a stage minimises: ``Objective(x) -> (total, content, style, tv, photo)``.

It is composed from small terms, each a module carrying its weight in the total:

- :class:`LayerTerms` — one loss module per backbone layer (:class:`~restyle.nn.losses.ContentLoss`
  for content; :class:`~restyle.nn.losses.StyleLoss` or, with regions,
  :class:`~restyle.nn.losses.GuidedStyleLoss` for style), the layers' weights normalised to sum 1;
- :class:`TotalVariation` — smoothness of the image itself;
- :class:`Photorealism` — the matting-Laplacian term of photo mode (Luan et al.);
- :class:`TemporalConsistency` — closeness to a given image where a mask says so (video: the
  previous stylised frame warped by the optical flow, Ruder et al.), one of the ``extra`` terms a
  caller adds to the total (``StyleTransfer.run(..., extra_terms=[...])``).

The targets inside the terms are built once per stage (:mod:`restyle.engine.targets`); the
backbone is shared and is not a submodule (the objective holds no network weights). The order of the
operations is fixed: the image's gradient sums several contributions, and floating-point sums
in another order give other bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn as nn

from restyle.engine.backend import autocast, prepare
from restyle.nn.losses import tv_loss
from restyle.nn.network import Backbone, LayerInfo

if TYPE_CHECKING:
    from restyle.nn.matting import MattingLoss

Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class Features:
    """The backbone as a run calls it: inputs moved to its device and memory format, the forward
    under autocast for bf16. Gradients flow unless the caller turns them off."""

    def __init__(self, backbone: Backbone, device: torch.device, precision: str):
        self.backbone, self.device, self.precision = backbone, device, precision

    def autocast(self) -> AbstractContextManager[Any]:
        return autocast(self.device, self.precision)

    def prepare(self, t: torch.Tensor) -> torch.Tensor:
        return prepare(t, self.device, self.precision)

    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.backbone(self.prepare(image), layers)

    @property
    def names(self) -> list[str]:
        """The backbone's layers in network order."""
        return list(self.backbone.names)

    @property
    def info(self) -> Mapping[str, LayerInfo]:
        """Each layer's stride, reach and channels."""
        return self.backbone.info


class LayerTerms(nn.Module):
    """``Σ_l w_l · loss_l(F_l)`` over layers l, ``w`` the layer weights normalised to sum 1.

    All layers' losses are formed first, then weighted and summed in the order of
    ``layer_weights`` (as the engine always has: the same operations give the same bits)."""

    def __init__(self, losses: Mapping[str, nn.Module], layer_weights: Mapping[str, float], weight: float):
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        self.layer_weights = dict(layer_weights)
        self.weight = weight  # this term's weight in the total

    @property
    def layers(self) -> list[str]:
        return list(self.losses.keys())

    def reweigh(self, factors: Mapping[str, float]) -> None:
        """Multiply each layer's share of the total by ``factors[layer]`` (1 where absent): the
        layer weights are scaled, and this term's weight with their sum, so the normalisation
        over the layers cancels (a lead stage's lighter deep style layers). No factors: no change."""
        if not factors:
            return
        before = sum(self.layer_weights.values()) or 1.0
        self.layer_weights = {n: w * factors.get(n, 1.0) for n, w in self.layer_weights.items()}
        self.weight *= (sum(self.layer_weights.values()) or 1.0) / before

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values = {n: loss(features[n]) for n, loss in self.losses.items()}
        return weighted(self.layer_weights, values)


class TotalVariation(nn.Module):
    """Mean squared difference between neighbouring pixels of the image."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tv_loss(x)


class Photorealism(nn.Module):
    """Photo mode's term: ``Σ_c V_cᵀ L V_c / N``, L the content photo's matting Laplacian."""

    def __init__(self, matting: MattingLoss, weight: float):
        super().__init__()
        self.matting = matting
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.matting(x)


class TemporalConsistency(nn.Module):
    """``mean(mask · (x − target)²)`` over pixels and channels (Ruder et al. 2016): a mean, so its
    weight means the same at every image size. ``target`` (``1 x 3 x H x W``) and ``mask``
    (``1 x 1 x H x W``, 1 = reliable) are resized to the image's size in coarse-to-fine stages."""

    def __init__(self, target: torch.Tensor, mask: torch.Tensor, weight: float):
        super().__init__()
        self.register_buffer("target", target.detach().float())
        self.register_buffer("mask", mask.detach().float())
        self.weight = weight
        self._sized: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target, mask = self.at(tuple(x.shape[-2:]))
        return (mask * (x - target).pow(2)).mean()

    def at(self, size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(target, mask) at ``size`` = (height, width), computed once per size."""
        target, mask = cast(torch.Tensor, self.target), cast(torch.Tensor, self.mask)
        key = (int(size[0]), int(size[1]))
        if tuple(target.shape[-2:]) == key:
            return target, mask
        if key not in self._sized:
            self._sized[key] = (nn.functional.interpolate(target, size=key, mode="area"),
                                nn.functional.interpolate(mask, size=key, mode="area"))
        return self._sized[key]


class Objective(nn.Module):
    """``forward(x) -> (total, content, style, tv, photo)`` for image ``x`` (``1 x 3 x H x W`` in
    [0, 1]), differentiable w.r.t. ``x``; ``total`` is the weighted sum of the other four
    (photo is 0 and left out of it without a photo term) plus the ``extra`` terms' (each a module
    with a ``weight``, e.g. :class:`TemporalConsistency`; not reported separately)."""

    def __init__(self, features: Features, content: LayerTerms, style: LayerTerms, tv: TotalVariation,
                 photo: Photorealism | None = None):
        super().__init__()
        self.features = features
        self.content, self.style, self.tv, self.photo = content, style, tv, photo
        #: The backbone layers one evaluation needs (content layers first, each once).
        self.layers = list(dict.fromkeys(content.layers + style.layers))
        self.extra = nn.ModuleList()

    def forward(self, x: torch.Tensor) -> Losses:
        feats = self.features(x, self.layers)
        content = self.content(feats)
        style = self.style(feats)
        tv = self.tv(x)
        total = self.content.weight * content + self.style.weight * style + self.tv.weight * tv
        if self.photo is not None:
            photo = self.photo(x)
            total = total + self.photo.weight * photo
        else:
            photo = torch.zeros((), device=x.device)
        for term in self.extra:
            total = total + term.weight * term(x)
        return total, content, style, tv, photo


def weighted(weights: Mapping[str, float], values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``Σ_n values[n] · weights[n] / Σ weights`` (in the order of ``weights``)."""
    total_w = sum(weights.values()) or 1.0
    return cast(torch.Tensor, sum(values[n] * (w / total_w) for n, w in weights.items()))
