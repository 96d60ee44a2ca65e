"""The backbone seam: what the engine, tiling, the size checks and the metrics may ask of a feature
network, and nothing more. :class:`~restyle.nn.vgg.VGGFeatures` (VGG16/VGG19) is its first
implementation; another network fits beside it by implementing :class:`Backbone`.

Nothing outside a network finds its pooling layers by name: a layer's geometry is its
:class:`LayerInfo` (stride, reach, channels), which the network computes from its own structure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer of a backbone.

    ``stride``: input pixels between neighbouring feature positions (a layer of stride s has
    ``size // s`` positions along a side of ``size`` pixels); ``reach``: how many input pixels
    beyond a position (right or down, the larger side) its value depends on; ``channels``: the
    feature channels."""

    name: str
    channels: int
    stride: int
    reach: int


@runtime_checkable
class Backbone(Protocol):
    """A frozen feature network with named layers.

    Contract:

    - ``names``: every addressable layer, in network order.
    - ``info[name]``: that layer's :class:`LayerInfo`; ``info`` has exactly the keys of ``names``.
    - ``preprocess(image)``: ``image`` is ``N x 3 x H x W`` RGB in [0, 1]; returns the network's
      input (its own normalisation: channel order, scale, mean). Callers never normalise.
    - ``forward(image, layers)``: the features of the given layers (RGB [0, 1] in, normalised
      inside), ``{name: N x C x H/stride x W/stride}``, computing no deeper than the deepest one;
      differentiable w.r.t. ``image``; the network's own parameters need no gradient.
    - A feature at a position depends only on the input pixels within ``reach`` of it (so tiles
      read with that halo give the same features as the whole image, up to rounding).
    - It is an ``nn.Module`` (``.to(device)``, ``.eval()``) and holds no per-run state, so runs in
      several threads may share one.
    """

    @property
    def names(self) -> Sequence[str]: ...

    @property
    def info(self) -> Mapping[str, LayerInfo]: ...

    def preprocess(self, image: torch.Tensor) -> torch.Tensor: ...

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]: ...

    def __call__(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]: ...


def deepest(backbone: Backbone, layers: Iterable[str]) -> LayerInfo:
    """The deepest of ``layers`` in network order."""
    order = {n: i for i, n in enumerate(backbone.names)}
    return backbone.info[max(layers, key=order.__getitem__)]


def halo(backbone: Backbone, layers: Iterable[str]) -> tuple[int, int]:
    """(halo, stride): the deepest layer's reach rounded up to its stride, and that stride — the
    margin a tile is read with so its interior features are exact, and the grid its edges lie on."""
    last = deepest(backbone, layers)
    return -(-last.reach // last.stride) * last.stride, last.stride


def chain_info(layers: Sequence[tuple[str, int, int, int]]) -> dict[str, LayerInfo]:
    """:class:`LayerInfo` of a plain chain of layers, each given as (name, out channels (0: same
    as before), kernel reach in positions (1 for a 3x3 conv with padding 1, 1 for a 2x2/2 pool),
    stride factor (1, or 2 for a pool))."""
    out: dict[str, LayerInfo] = {}
    channels, stride, extent = 3, 1, 0
    for name, ch, reach, factor in layers:
        extent += reach * stride
        stride *= factor
        channels = ch or channels
        out[name] = LayerInfo(name, channels, stride, extent)
    return out
