"""Image input: load anything image-like as 8-bit RGB, resize, convert to and from tensors.

Every problem with an input image is reported as a one-line :class:`InputImageError` that starts
with the image's role and file name, e.g. ``content image 'foo.jpg': not found``. Writing lives
in :mod:`restyle.io.files` (atomic files) and :mod:`restyle.io.record` (outputs with their run
record).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union, cast

import numpy as np
import torch
from PIL import Image, ImageOps

from restyle import spec
from restyle.errors import ConfigError, InputImageError, notice
from restyle.io.files import _DECODE_ERRORS, _describe, _open, _pillow_pixel_limit
from restyle.spec import DEFAULT_MAX_PIXELS  # the one pixel cap (config's default, --max-pixels' help)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageSource",
    "load_image",
    "resize_longest",
    "resize_to",
    "to_image",
    "to_tensor",
]

#: The smallest width and height accepted.
MIN_SIDE = spec.MIN_SIDE

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]

#: Modes that hold more than 8 bits per sample and need scaling rather than clipping.
_16BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}

_WHITE = (255, 255, 255, 255)

# Pillow's bomb limit is a module global; this lock keeps our temporary changes to it from
# interleaving when images are loaded from several threads.
def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               role: str = "image") -> Image.Image:
    """Return *source* as a new 8-bit RGB image.

    *source* may be a path, a PIL image, a numpy array (HxW, HxWx1, HxWx3 or HxWx4; uint8 0-255,
    uint16 0-65535, bool, or float 0-1) or a torch tensor (CxHxW or 1xCxHxW, C in 1, 3, 4; float
    0-1 or uint8). Images with more than *max_pixels* pixels (``None``: no cap) or a side under
    2 pixels are refused. EXIF orientation is applied, transparency is composited on white,
    16-bit and float data are scaled to 8 bits, and of a multi-frame image the first frame is
    used (with a notice). *role* (e.g. ``"style image 2"``) starts every error message.
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_file(Path(source), f"{role} '{os.fspath(source)}'", max_pixels)
    if isinstance(source, Image.Image):
        return _decode(source, role, max_pixels)
    if isinstance(source, torch.Tensor):
        source = _tensor_to_array(source, role)
    if isinstance(source, np.ndarray):
        return _to_rgb(_array_to_image(source, role, max_pixels), role)
    raise InputImageError(f"{role}: cannot use a {type(source).__name__} as an image "
                          "(expected a path, PIL image, numpy array or torch tensor)")


def _load_file(path: Path, label: str, max_pixels: int | None) -> Image.Image:
    # Pillow's own bomb check runs inside Image.open and only tells the pixel count; switch it
    # off there (open reads just the header) so that _decode can report the size and the cap.
    with _pillow_pixel_limit(None):
        img = _open(path, label)
    with img:
        return _decode(img, label, max_pixels)


def _decode(img: Image.Image, label: str, max_pixels: int | None) -> Image.Image:
    """Check the size of *img* (only its header need be read), then decode and normalise it."""
    _check_size(img.size, label, max_pixels)
    try:
        with _pillow_pixel_limit(max_pixels):
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                img.seek(0)
                notice(f"{label} is animated ({frames} frames); using the first frame")
            img.load()
            # exif_transpose returns a new image, so the caller's image is never handed back.
            return _to_rgb(ImageOps.exif_transpose(img), label)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputImageError(f"{label}: has a frame over the cap of {max_pixels} pixels "
                              "(raise it with --max-pixels)") from None
    except _DECODE_ERRORS as exc:
        raise InputImageError(f"{label}: cannot decode the image data; the file is truncated "
                              f"or corrupt ({_describe(exc)})") from None


def _check_size(size: tuple[int, int], label: str, max_pixels: int | None) -> None:
    width, height = size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputImageError(f"{label}: image is {width}x{height} pixels; "
                              f"need at least {MIN_SIDE}x{MIN_SIDE}")
    if max_pixels is not None and width * height > max_pixels:
        raise InputImageError(f"{label}: is {width} x {height} = {width * height} pixels, over "
                              f"the cap of {max_pixels} (raise it with --max-pixels)")


def _to_rgb(img: Image.Image, label: str) -> Image.Image:
    """Convert a decoded image of any mode to 8-bit RGB (*img* itself if it is RGB already)."""
    if img.mode in _16BIT_MODES or img.mode in ("I", "F"):
        img = Image.fromarray(_deep_to_uint8(np.asarray(img), img.mode))
    if img.has_transparency_data:
        try:
            rgba = img.convert("RGBA")
        except ValueError:
            raise InputImageError(f"{label}: pixel mode {img.mode} is not supported") from None
        alpha_min, _ = cast(tuple[int, int], rgba.getchannel("A").getextrema())
        if alpha_min < 255:
            notice(f"{label} has transparent pixels; composited on white")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except ValueError:
        raise InputImageError(f"{label}: pixel mode {img.mode} is not supported") from None


def _deep_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale the samples of a 16-bit ("I;16*"), 32-bit integer ("I") or float ("F") image to
    uint8: 16-bit data by 255/65535; "I" data as 16-bit when it fits in 0-65535; "F" data as
    0-1 or 0-255 when it fits; anything else stretched from its minimum to its maximum."""
    if mode in _16BIT_MODES:
        return _uint16_to_uint8(values)
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if mode == "I" and low >= 0 and high <= 65535:
        return _uint16_to_uint8(values)
    if mode == "F" and low >= 0 and high <= 1:
        return _unit_float_to_uint8(values)
    if mode == "F" and low >= 0 and high <= 255:
        return _unit_float_to_uint8(values / 255)
    if high == low:
        return np.zeros(values.shape, np.uint8)
    return _unit_float_to_uint8((values - low) / (high - low))


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
    """0-65535 to 0-255, rounding (65535 -> 255, 32768 -> 128)."""
    return np.rint(values.astype(np.float64) * (255 / 65535)).astype(np.uint8)


def _unit_float_to_uint8(values: np.ndarray) -> np.ndarray:
    """0-1 (clipped) to 0-255, rounding."""
    return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)


def _array_to_image(array: np.ndarray, label: str, max_pixels: int | None) -> Image.Image:
    """An L, RGB or RGBA image from an HxW, HxWx1, HxWx3 or HxWx4 array."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InputImageError(f"{label}: an array of shape {tuple(array.shape)} is not an image "
                              "(expected HxW, HxWx3 or HxWx4)")
    _check_size((array.shape[1], array.shape[0]), label, max_pixels)
    return Image.fromarray(np.ascontiguousarray(_array_to_uint8(array, label)))


def _array_to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint8) * 255
    if kind == "f":
        if not np.isfinite(array).all():
            raise InputImageError(f"{label}: contains NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            notice(f"{label}: float values outside 0-1 were clipped")
        return _unit_float_to_uint8(array)
    if kind in "ui":
        if array.dtype == np.uint8:
            return array
        if array.dtype == np.uint16:
            return _uint16_to_uint8(array)
        if array.min() >= 0 and array.max() <= 255:
            return array.astype(np.uint8)
        raise InputImageError(f"{label}: {array.dtype} values must lie in 0-255 "
                              "(or use uint8, uint16 or float 0-1)")
    raise InputImageError(f"{label}: an array of dtype {array.dtype} is not an image")


def _tensor_to_array(tensor: torch.Tensor, label: str) -> np.ndarray:
    """An HxWxC numpy array from a CxHxW or 1xCxHxW tensor."""
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise InputImageError(f"{label}: a tensor of shape {tuple(tensor.shape)} is not an image "
                              "(expected 3xHxW or 1x3xHxW)")
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- resizing & tensors


def resize_longest(img: Image.Image, size: int | None) -> Image.Image:
    """Scale *img* (LANCZOS) so that its longer side is *size*, keeping the aspect ratio and at
    least 2 pixels per side; ``None`` returns *img* unchanged."""
    if size is None:
        return img
    return resize_to(img, longest_size(img.size, size))


def longest_size(image_size: tuple[int, int], size: int) -> tuple[int, int]:
    """The (width, height) :func:`resize_longest` gives an image of ``image_size`` = (width, height)."""
    _check_target_side(size, "size")
    return spec.longest_size(image_size, size)


def resize_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale *img* (LANCZOS) to exactly *size* = (width, height); a new image."""
    width, height = size
    _check_target_side(width, "width")
    _check_target_side(height, "height")
    return img.resize((width, height), Image.Resampling.LANCZOS)


def _check_target_side(value: int, what: str) -> None:
    if value < MIN_SIDE:
        raise ConfigError(f"image {what} must be at least {MIN_SIDE} pixels, not {value}")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A float32 1x3xHxW tensor in [0, 1] from an image (converted to RGB first if need be)."""
    if img.mode != "RGB":
        img = _to_rgb(img, "image")
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8))
    return pixels.permute(2, 0, 1).unsqueeze(0).float().div_(255).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """An 8-bit RGB image from a 1x3xHxW or 3xHxW tensor (clamped to [0, 1], NaN as 0)."""
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(tensor.shape)}")
    values = torch.nan_to_num(tensor.detach().cpu().float(), nan=0.0).clamp_(0, 1)
    pixels = values.mul_(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(pixels.numpy())
