"""The decoder of universal style transfer: it turns VGG19 features at one layer back into an image.

It mirrors the encoder (Li et al. 2017; Huang & Belongie 2017): 3x3 reflection-padded convolutions
with ReLU, a nearest-neighbour upsampling per pooling undone, and a last convolution to RGB. It
is trained only to reconstruct photographs from their features (:mod:`restyle.train.decoder`),
so it knows no painting; the transforms of :mod:`restyle.nn.wct` make the features a painting's.
:class:`DecoderShape` gives the channels per resolution, narrower than VGG's towards full
resolution, where the convolutions cost most.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DecoderShape:
    """``layer`` is the VGG19 layer decoded from (``block4_conv1``: 512 channels, 1/8 of the
    resolution); ``widths`` the channels at 1/4, 1/2 and full resolution; ``convs`` how many 3x3
    convolutions each of those levels has before the next upsampling (the last level's count
    includes the convolution to RGB)."""

    layer: str = "block4_conv1"
    widths: tuple[int, ...] = (256, 128, 32)
    convs: tuple[int, ...] = (2, 2, 3)
    #: The Caffe VGG's features are in the hundreds (block4_conv1: mean 393, std 612 on the bundled
    #: cat); the first convolution sees them scaled to about unit size.
    in_scale: float = 1 / 512

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["widths"], d["convs"] = list(self.widths), list(self.convs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "DecoderShape":
        widths, convs = d["widths"], d["convs"]
        assert isinstance(widths, list) and isinstance(convs, list)
        return cls(layer=str(d["layer"]), widths=tuple(int(w) for w in widths), convs=tuple(int(c) for c in convs),
                   in_scale=float(d["in_scale"]))  # type: ignore[arg-type]

    @property
    def in_channels(self) -> int:
        return {"block1_conv1": 64, "block2_conv1": 128, "block3_conv1": 256, "block4_conv1": 512}[self.layer]

    @property
    def downsamplings(self) -> int:
        return int(self.layer[5]) - 1


#: The decoders of the cascade, coarse to fine (Li et al.'s levels but relu5_1): each layer's shape.
#: The deeper the layer, the larger its features (block1_conv1: mean 15 on the bundled cat; block4_conv1: 393).
CASCADE: dict[str, DecoderShape] = {
    "block4_conv1": DecoderShape("block4_conv1", (256, 128, 32), (2, 2, 3), 1 / 512),
    "block3_conv1": DecoderShape("block3_conv1", (128, 32), (1, 2), 1 / 128),
    "block2_conv1": DecoderShape("block2_conv1", (32,), (2,), 1 / 64),
    "block1_conv1": DecoderShape("block1_conv1", (), (), 1 / 32),
}


class Conv(nn.Module):
    def __init__(self, cin: int, cout: int, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, [1, 1, 1, 1], mode="reflect"))
        return F.relu(y) if self.relu else y


class Decoder(nn.Module):
    """``forward(features) -> image``: ``features`` ``B x C x h x w`` at :attr:`shape`'s layer,
    the image ``B x 3 x (h * 2^k) x (w * 2^k)`` in [0, 1] (clamped at inference only, so training
    sees the gradient everywhere)."""

    def __init__(self, shape: DecoderShape = DecoderShape()):
        super().__init__()
        if len(shape.widths) != shape.downsamplings or len(shape.convs) != shape.downsamplings:
            raise ValueError(f"{shape.layer} needs {shape.downsamplings} widths and conv counts")
        self.shape = shape
        layers: list[nn.Module] = []
        cin = shape.in_channels
        for level, (width, count) in enumerate(zip(shape.widths, shape.convs)):
            layers += [Conv(cin, width), nn.Upsample(scale_factor=2.0, mode="nearest")]
            cin = width
            last = level == len(shape.widths) - 1
            for i in range(count - 1):
                out = width if not (last and i == count - 2) else 3
                layers.append(Conv(cin, out, relu=not (last and i == count - 2)))
                cin = out
        if cin != 3:
            layers.append(Conv(cin, 3, relu=False))
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        y = self.body(features * self.shape.in_scale)
        return y if self.training else y.clamp(0, 1)


def gflops(shape: DecoderShape, height: int, width: int) -> float:
    """Multiply-adds x 2 of the decoder's convolutions for a ``height x width`` output, in GFLOP."""
    total = 0.0
    dec = Decoder(shape)
    scale = 2 ** shape.downsamplings
    px = height * width / scale**2
    for m in dec.body:
        if isinstance(m, nn.Upsample):
            px *= 4
        elif isinstance(m, Conv):
            total += 2 * 9 * m.conv.in_channels * m.conv.out_channels * px
    return total / 1e9
