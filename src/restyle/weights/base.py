"""What every weights source shares: the validated weights object, file sniffing, safe loading, and
:func:`validated`, the one place where a file is checked against the architecture."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from restyle.errors import WeightsError
from restyle.spec import CONV_NAMES, CONV_SHAPES

Conv = tuple[torch.Tensor, torch.Tensor]
"""One conv layer's ``(W float32 [out, in, 3, 3], b float32 [out])``."""

_VGG19_ONLY = frozenset(CONV_NAMES["vgg19"]) - frozenset(CONV_NAMES["vgg16"])


@dataclass
class VGGWeights:
    """ImageNet weights for the conv layers of a VGG16 or VGG19.

    ``convention`` is the input the weights were trained on: ``"caffe"`` is BGR, 0-255, minus
    the means (103.939, 116.779, 123.68); ``"torch"`` is RGB, 0-1, normalised with the ImageNet
    mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
    """

    arch: str  # "vgg16" or "vgg19"
    convs: dict[str, Conv]  # Keras names -> (W float32 [out,in,3,3], b float32 [out]), network order
    convention: str  # "caffe" or "torch"
    source: str  # human-readable: "embedded VGG19 (...)" or the file path


# File signatures: HDF5; torch.save's zip format; torch.save's legacy format (a binary pickle).
_MAGIC = ((b"\x89HDF\r\n\x1a\n", "hdf5"), (b"PK\x03\x04", "torch"), (b"\x80", "torch"))
_EXTENSIONS = {".pth": "torch", ".pt": "torch", ".h5": "hdf5", ".hdf5": "hdf5"}


def _file_format(path: Path) -> str:
    """``"torch"`` or ``"hdf5"``: from the file's signature, else from its extension."""
    if not path.exists():
        raise WeightsError(f"weights file '{path}' not found")
    if path.is_dir():
        raise WeightsError(f"weights file '{path}' is a directory, not a file")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise WeightsError(f"weights file '{path}' cannot be read ({exc.strerror or exc})") from exc
    if not head:
        raise corrupt(path, "empty file")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension is None:
        raise WeightsError(
            f"weights file '{path}' is neither a torchvision checkpoint (.pth) nor a Keras HDF5 file (.h5)"
        )
    return by_extension  # the loader reports what is wrong with it


def corrupt(path: Path, cause: BaseException | str) -> WeightsError:
    """The error for a file that cannot be parsed, with a short reason."""
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if len(reason) > 120:
        reason = reason[:117] + "..."
    return WeightsError(f"weights file '{path}' is truncated or corrupt ({reason})")


def load_torch_file(path: Path) -> object:
    """``torch.load`` a checkpoint safely (``weights_only``) onto the CPU, memory-mapped when
    the file is in the zip format (mmap does not support the legacy format)."""
    with path.open("rb") as f:
        head = f.read(4)
    is_zip = head == b"PK\x03\x04"
    if not is_zip and not head.startswith(b"\x80"):  # neither torch.save's zip nor its legacy pickle format
        raise WeightsError(f"weights file '{path}' is not a PyTorch checkpoint (no zip or pickle header)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as exc:  # torch.load raises many types (RuntimeError, UnpicklingError, EOFError...)
        if "Weights only load failed" in str(exc):
            raise WeightsError(
                f"weights file '{path}' holds pickled Python objects, not a plain state dict "
                "(save model.state_dict() instead)"
            ) from exc
        raise corrupt(path, exc) from exc


def validated(
    arch: str, convs: Mapping[str, tuple[object, object]], *, convention: str, source: str, path: Path
) -> VGGWeights:
    """Check what a source read against ``arch`` and return it as :class:`VGGWeights`.

    ``convs`` is every conv the file holds, by Keras name (extra names are ignored). Checks:
    the file is of the same VGG variant as ``arch``, every conv is present, shapes are exact and
    values finite. Tensors come back as float32, contiguous, in network order.
    """
    label = f"weights file '{path}'"
    if not convs:
        raise WeightsError(f"{label} holds no VGG conv weights")
    held = "vgg19" if _VGG19_ONLY & convs.keys() else "vgg16"
    if held != arch:
        raise WeightsError(f"{label} holds {held.upper()} weights, but --model is {arch}")
    missing = [name for name in CONV_NAMES[arch] if name not in convs]
    if missing:
        raise WeightsError(f"{label} has no weights for {', '.join(missing)}: not a complete {arch.upper()}")
    checked: dict[str, Conv] = {}
    for name, shape in CONV_SHAPES[arch].items():
        w, b = convs[name]
        checked[name] = (
            _checked_tensor(w, shape, f"{label}: {name} weight", arch),
            _checked_tensor(b, shape[:1], f"{label}: {name} bias", arch),
        )
    return VGGWeights(arch=arch, convs=checked, convention=convention, source=source)


def _checked_tensor(t: object, shape: tuple[int, ...], what: str, arch: str) -> torch.Tensor:
    """``t`` as a contiguous float32 tensor, if it is a finite floating-point tensor of ``shape``."""
    if not isinstance(t, torch.Tensor):
        raise WeightsError(f"{what} is a {type(t).__name__}, not a tensor")
    if tuple(t.shape) != shape:
        raise WeightsError(f"{what} has shape {list(t.shape)}, expected {list(shape)} for {arch.upper()}")
    if not t.is_floating_point():
        raise WeightsError(f"{what} is of type {t.dtype}, not floating point")
    if not bool(torch.isfinite(t.sum())):  # a NaN or inf anywhere makes the sum non-finite
        raise WeightsError(f"{what} holds NaN or infinite values")
    return t.to(torch.float32).contiguous()
