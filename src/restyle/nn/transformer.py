"""The image transformation network of the fast method (Johnson, Alahi & Fei-Fei 2016), built from
its shape (:class:`NetShape`), with conditional instance normalisation (Dumoulin, Shlens & Kudlur
2017) so one network holds several styles and blends them at inference.

The layout is Johnson's: a wide-kernel convolution, two strided convolutions (each halving the
resolution and doubling the channels), ``blocks`` residual blocks at a quarter of the resolution,
two nearest-neighbour upsamplings each followed by a convolution, and a wide-kernel convolution
back to RGB. ``width`` is the first layer's channels (Johnson: 32); the network knows nothing of
where its parameters come from (:mod:`restyle.methods.fastmodel` loads them).

Every normalisation is an instance norm whose scale and shift are chosen per style: with ``S``
styles each norm holds ``S x C`` scales and shifts, and a blend (``B x S``, rows summing to 1) mixes
them. Input and output are RGB in [0, 1]; the output goes through a sigmoid, so it is always a
valid image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class NetShape:
    """The shape of a transformation network: ``width`` channels in the first layer (doubled at
    each of the two downsamplings), ``blocks`` residual blocks, ``kernel`` the first and last
    layers' kernel size, ``styles`` the number of styles it holds."""

    width: int = 16
    blocks: int = 5
    kernel: int = 9
    styles: int = 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class CondInstanceNorm(nn.Module):
    """Instance normalisation with one affine (scale, shift) per style, mixed by a blend."""

    def __init__(self, channels: int, styles: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(styles, channels))
        self.shift = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
        scale, shift = blend @ self.scale, blend @ self.shift
        if blend.shape[0] == 1:  # one affine for the batch: a single InstanceNormalization in ONNX
            return F.instance_norm(x, weight=scale[0], bias=shift[0], eps=1e-5)
        return F.instance_norm(x, eps=1e-5) * scale[:, :, None, None] + shift[:, :, None, None]


class ConvNorm(nn.Module):
    """Reflection-padded convolution, then conditional instance norm and (unless ``relu`` is
    False) ReLU; ``upsample`` doubles the resolution (nearest neighbour) before the convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, styles: int, stride: int = 1, upsample: bool = False,
                 relu: bool = True):
        super().__init__()
        self.pad = kernel // 2
        self.upsample, self.relu = upsample, relu
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride)
        self.norm = CondInstanceNorm(cout, styles)

    def forward(self, x: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        y = self.norm(self.conv(F.pad(x, [self.pad] * 4, mode="reflect")), blend)
        return F.relu(y) if self.relu else y


class Residual(nn.Module):
    """``x + norm(conv(relu(norm(conv(x)))))`` (Johnson's residual block, 3x3 kernels)."""

    def __init__(self, channels: int, styles: int):
        super().__init__()
        self.a = ConvNorm(channels, channels, 3, styles)
        self.b = ConvNorm(channels, channels, 3, styles, relu=False)

    def forward(self, x: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, blend), blend)


class TransformerNet(nn.Module):
    """``forward(image, blend) -> image``: ``image`` ``B x 3 x H x W`` in [0, 1] (any H, W; sides
    that are not multiples of 4 are padded by reflection and cropped back), ``blend`` ``B x S`` or
    ``S`` (one row for the whole batch)."""

    def __init__(self, shape: NetShape):
        super().__init__()
        self.shape = shape
        w, s, k = shape.width, shape.styles, shape.kernel
        self.down = nn.ModuleList([ConvNorm(3, w, k, s), ConvNorm(w, 2 * w, 3, s, stride=2),
                                   ConvNorm(2 * w, 4 * w, 3, s, stride=2)])
        self.res = nn.ModuleList([Residual(4 * w, s) for _ in range(shape.blocks)])
        self.up = nn.ModuleList([ConvNorm(4 * w, 2 * w, 3, s, upsample=True), ConvNorm(2 * w, w, 3, s, upsample=True)])
        self.out = nn.Conv2d(w, 3, k)

    def forward(self, image: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        x = F.pad(image, [0, pw, 0, ph], mode="reflect") if ph or pw else image
        if blend.ndim == 1:
            blend = blend[None].expand(x.shape[0], -1)
        blend = blend.to(x.dtype)
        for layer in self.down:
            x = layer(x, blend)
        for block in self.res:
            x = block(x, blend)
        for layer in self.up:
            x = layer(x, blend)
        pad = self.out.kernel_size[0] // 2
        y = torch.sigmoid(self.out(F.pad(x, [pad] * 4, mode="reflect")))
        return y[..., :h, :w]

    def style_parameters(self) -> Iterator[nn.Parameter]:
        """The per-style parameters (the norms' scales and shifts)."""
        for m in self.modules():
            if isinstance(m, CondInstanceNorm):
                yield m.scale
                yield m.shift


def gflops(shape: NetShape, height: int, width: int) -> float:
    """Multiply-adds x 2 of the convolutions for one ``height x width`` image, in GFLOP."""
    w, k, px = shape.width, shape.kernel, height * width
    outer = 2 * k * k * 3 * w * px  # first and last layers, each
    down = 9 * w * 2 * w * px / 4 + 9 * 2 * w * 4 * w * px / 16
    res = shape.blocks * 2 * 9 * (4 * w) ** 2 * px / 16
    up = 9 * 4 * w * 2 * w * px / 4 + 9 * 2 * w * w * px
    return 2 * outer / 1e9 + 2 * (down + res + up) / 1e9
