"""The factory that joins a weights source (:mod:`restyle.weights`) and the network
(:mod:`restyle.nn.vgg`), and the per-process cache of built backbones.

It sits above both, so neither knows the other: the network takes ``{conv name: (W, b)}``
and an input convention; the weights loaders know only the architecture facts of
:mod:`restyle.spec`.
"""

from __future__ import annotations

import functools
import os

import torch

from restyle.errors import ConfigError
from restyle.nn.vgg import VGGFeatures
from restyle.spec import arch_config
from restyle.weights import load_weights


def build_backbone(arch: str = "vgg19", weights: str | None = None, pooling: str = "max") -> VGGFeatures:
    """A VGG with ImageNet weights from ``weights`` (None: the default source for ``arch``)."""
    arch_config(arch)
    w = load_weights(arch, weights)
    if w.arch != arch:
        raise ConfigError(f"weights '{w.source}' are {w.arch.upper()}, but the model is {arch.upper()}")
    return VGGFeatures(arch, pooling=pooling, convention=w.convention).load(w.convs)


def bf16_cpu_ok() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX). ``RESTYLE_NO_NATIVE_BF16=1``
    answers False, so that a machine with bf16 takes the path of one without (the tests' second
    pass with ``ATEN_CPU_CAPABILITY=avx2``, which emulates an AVX2 laptop)."""
    if os.environ.get("RESTYLE_NO_NATIVE_BF16") == "1":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def channels_last(device: torch.device, dtype: torch.dtype) -> bool:
    """One rule for the backbone's and its inputs' memory format: channels-last on CUDA, for bf16,
    and for fp32 on CPUs with AVX512-BF16 (fp32 at 256² there: NCHW 587, channels-last 539 ms/it)."""
    return device.type == "cuda" or dtype == torch.bfloat16 or bf16_cpu_ok()


@functools.lru_cache(maxsize=4)
def cached_backbone(model: str, weights: str | None, pooling: str, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> VGGFeatures:
    """The backbone, built once per process for each (model, weights, pooling, device, dtype);
    the last four are kept. ``dtype`` bf16 stores the conv weights in bf16, so autocast need not
    cast them again on every forward (a small gain: 313 -> 308 ms per 256² iteration here); the
    input normalisation stays fp32. The module is frozen (no gradients, eval mode), so runs in
    several threads may share it."""
    net = build_backbone(model, weights, pooling).to(device)
    net.convs.to(dtype)  # the input normalisation buffers keep their fp32 values
    if channels_last(device, dtype):
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # nn.Module.to takes it; the stubs omit it
    return net
