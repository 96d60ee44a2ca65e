"""The VGG16/VGG19 network, built from the config lists of :mod:`restyle.spec`, every layer addressable by its Keras name.

``blockN_convM`` is the output of that convolution *after* its ReLU (as in Keras, where the
activation is part of the conv layer); ``poolN`` (or Keras' ``blockN_pool``) is the output of
block N's pooling layer. The network takes RGB images in [0, 1] and applies the input
convention its weights were trained with (Caffe: BGR, 0-255, mean-subtracted; torchvision:
RGB, 0-1, mean/std) itself, so every caller works in one image space. The network never knows
where its weights came from: :func:`restyle.backbone.build_backbone` joins it with a source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from restyle.errors import ConfigError
from restyle.nn.network import LayerInfo, chain_info
from restyle.spec import (
    CAFFE_BGR_MEAN,
    TORCH_RGB_MEAN,
    TORCH_RGB_STD,
    arch_config,
    layer_names,
)


class VGGFeatures(nn.Module):
    """VGG feature extractor that stops after the deepest layer asked for: a
    :class:`~restyle.nn.network.Backbone`.

    ``forward(image, layers)`` returns ``{name: activation}`` for the requested layers only.
    """

    in_scale: torch.Tensor
    in_shift: torch.Tensor

    def __init__(self, arch: str = "vgg19", pooling: str = "max", convention: str = "caffe"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ConfigError(f"unknown pooling '{pooling}'; choose max or avg")
        if convention not in ("caffe", "torch"):
            raise ValueError(f"unknown input convention {convention!r}")
        self.arch, self.pooling, self.convention = arch, pooling, convention
        self.names = layer_names(arch)
        self.convs = nn.ModuleDict()
        in_ch = 3
        chain: list[tuple[str, int, int, int]] = []
        for b, block in enumerate(arch_config(arch), start=1):
            for c, out_ch in enumerate(block, start=1):
                chain.append((f"block{b}_conv{c}", out_ch, 1, 1))  # 3x3, padding 1
                # On the meta device: no memory, no random init (which costs ~0.1 s); load() fills them.
                self.convs[f"block{b}_conv{c}"] = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, device="meta")
                in_ch = out_ch
            chain.append((f"pool{b}", 0, 1, 2))  # 2x2, stride 2
        self._info = chain_info(chain)
        if convention == "caffe":
            # x_caffe = 255 * x_rgb[::-1] - mean_bgr
            scale = torch.full((3,), 255.0)
            shift = -torch.tensor(CAFFE_BGR_MEAN)
            perm = [2, 1, 0]
        else:
            scale = 1.0 / torch.tensor(TORCH_RGB_STD)
            shift = -torch.tensor(TORCH_RGB_MEAN) / torch.tensor(TORCH_RGB_STD)
            perm = [0, 1, 2]
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", shift.view(1, 3, 1, 1), persistent=False)
        self.perm = perm
        self.requires_grad_(False)
        self.eval()

    @property
    def info(self) -> dict[str, LayerInfo]:
        """Each layer's stride, reach and channels (:class:`~restyle.nn.network.LayerInfo`)."""
        return self._info

    def load(self, convs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> "VGGFeatures":
        """Copy weights given as ``{keras_conv_name: (W [out,in,3,3], b [out])}``."""
        for name, module in self.convs.items():
            conv = cast(nn.Conv2d, module)
            w, b = convs[name]
            if tuple(w.shape) != tuple(conv.weight.shape) or conv.bias is None or tuple(b.shape) != tuple(conv.bias.shape):
                raise ValueError(f"{name}: expected {tuple(conv.weight.shape)}, got {tuple(w.shape)}")
            conv.weight = nn.Parameter(w.detach().to(torch.float32).contiguous(), requires_grad=False)
            conv.bias = nn.Parameter(b.detach().to(torch.float32).contiguous(), requires_grad=False)
        return self

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] -> the input convention of the weights."""
        if self.perm != [0, 1, 2]:
            image = image[:, self.perm]
        return image * self.in_scale + self.in_shift

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        order = {n: i for i, n in enumerate(self.names)}
        last = max(order[n] for n in wanted)
        out: dict[str, torch.Tensor] = {}
        pixels = image.shape[-2] * image.shape[-1]
        x = self.preprocess(image)
        for name in self.names[: last + 1]:
            if name not in self.convs:  # a pooling layer
                if self.pooling == "avg":
                    x = F.avg_pool2d(x, 2, 2)
                elif x.requires_grad and pixels >= LOW_MEMORY_PIXELS:
                    x = MaxPool2x2.apply(x)
                else:
                    x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(self.convs[name](x), inplace=True)  # the conv output is not needed for backward
            if name in wanted:
                out[name] = x
        return out


#: From this many input pixels up (1536²), max pooling keeps no indices for backward (below).
LOW_MEMORY_PIXELS = 1536 * 1536


class MaxPool2x2(torch.autograd.Function):
    """2x2/2 max pooling that keeps no int64 indices for backward: it keeps its input (which the
    ReLU before it keeps anyway) and finds the indices again when the gradient comes. The
    indices are a quarter of the memory a VGG pass holds for backward (969 -> 729 MB at 1024²,
    about 1 GB saved at 2048²), and finding them again costs about 5% of an iteration (285 vs
    271 ms at 256² here), so the backbone uses it only from ``LOW_MEMORY_PIXELS`` up. Gradients
    are bit-identical to ``F.max_pool2d``'s (same kernel, same indices)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return F.max_pool2d(x, 2, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        _, indices = F.max_pool2d(x, 2, 2, return_indices=True)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [2, 2], [2, 2], [0, 0], [1, 1], False, indices)
