"""Where a run executes: device and precision resolution, and the backend flags set for the
duration of a run (not for the process, so a server can run jobs with different settings)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from restyle.backbone import bf16_cpu_ok, channels_last
from restyle.errors import ConfigError, notice


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for, but no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware runs it natively (CUDA, CPUs with AVX512-BF16/AMX), else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "tf32"
        return "bf16" if bf16_cpu_ok() else "fp32"
    if name == "bf16" and device.type == "cpu" and not bf16_cpu_ok():
        notice("this CPU has no native bf16; bf16 will be slow (try --precision fp32)")
    return name


def weights_dtype(precision: str) -> torch.dtype:
    """The backbone's weight dtype: bf16 under bf16 (autocast need not cast them every pass), else fp32."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The backbone's forward context: bf16 autocast under bf16, else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare(t: torch.Tensor, device: torch.device, precision: str) -> torch.Tensor:
    """``t`` on ``device``, in the backbone's memory format (channels-last where it is)."""
    t = t.to(device)
    if channels_last(device, weights_dtype(precision)):
        t = t.contiguous(memory_format=torch.channels_last)
    return t


@contextlib.contextmanager
def backend_flags(device: torch.device, precision: str) -> Iterator[None]:
    """On CUDA, for the duration of the block: cuDNN benchmark on (fixed shapes every iteration:
    cuDNN picks its fastest kernels once) and TF32 only when asked for (cuDNN would otherwise use
    it for convolutions even under "fp32"). The previous values are restored afterwards."""
    if device.type != "cuda":
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.benchmark = True
    matmul.allow_tf32 = cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved
