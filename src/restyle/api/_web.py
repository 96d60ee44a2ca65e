"""Helpers for front-ends that take images over the network (``restyle serve``): the same checks
and conversions ``restyle run`` applies to files, for uploads, previews and thumbnails."""

from __future__ import annotations

import importlib.resources
import os
from io import BytesIO
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from PIL import Image

from restyle.errors import ConfigError, InputImageError
from restyle.executors.base import cpu_count
from restyle.io import images
from restyle.io.files import header_size
from restyle.io.history import history_csv


def check_image(path: str | Path, role: str = "image", *, name: str | None = None,
                max_pixels: int | None = None) -> tuple[int, int]:
    """Load the image file at ``path`` exactly as ``restyle run`` loads its inputs and return its
    (width, height), or raise the same one-line :class:`~restyle.errors.InputImageError`, naming the
    image ``name`` (e.g. an upload's file name) instead of ``path`` when given. The error's ``problem``
    attribute says which kind of problem it is: ``"too-large"`` (over ``max_pixels``, e.g. a decompression
    bomb), ``"too-small"`` (a side under 2 pixels) or ``"unreadable"`` (not an image, truncated, corrupt)."""
    limit = images.DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with images.load_image(path, max_pixels=limit, role=role) as img:
            return img.size
    except InputImageError as err:
        message = str(err)
        if name is not None:
            shown = " ".join(name.split()).replace("'", "’")
            message = message.replace(f"{role} '{os.fspath(path)}'", f"{role} '{shown}'", 1)
        problem = "unreadable"
        size = header_size(path)
        if size is not None and size[0] * size[1] > limit:
            problem = "too-large"
        elif size is not None and min(size) < images.MIN_SIDE:
            problem = "too-small"
        error = InputImageError(message)
        error.problem = problem  # type: ignore[attr-defined]
        raise error from None


def example_images() -> dict[str, Path]:
    """The bundled example images (``restyle/examples``), by file name."""
    folder = Path(str(importlib.resources.files("restyle") / "examples"))
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")}


def encode_image(image: Any, *, longest: int | None = None, format: str = "png", quality: int = 85) -> bytes:
    """``image`` (a path, PIL image, array or tensor, e.g. :attr:`Progress.image`) as PNG or JPEG bytes,
    scaled down so its longest side is at most ``longest`` (for previews and thumbnails)."""
    if format not in ("png", "jpeg"):
        raise ConfigError(f"unknown image format '{format}'; choose png or jpeg")
    img = images.load_image(image, role="image") if not hasattr(image, "float") else images.to_image(
        image.detach().float().cpu())
    if longest is not None and max(img.size) > longest:
        img = img.copy()
        img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    buf = BytesIO()
    if format == "png":
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def loss_history_csv(rows: Sequence[Mapping[str, float]]) -> str:
    """History rows (as ``on_iteration`` receives them) in the format of ``OUT.losses.csv``."""
    return history_csv([dict(r) for r in rows])


def available_devices() -> list[str]:
    """The devices a run can use here: ``cuda:0``, ``cuda:1``, ... when CUDA is available, else ``cpu``."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


def available_cpus() -> int:
    """The CPU cores this process may use (its affinity, else the machine's count)."""
    return cpu_count()


def check_requests(runs: Iterable[tuple[str, Any, Any]]) -> None:
    """Refuse, before any of them runs, a run (label, content path, config) whose output would
    pass the pixel cap (:meth:`restyle.config.Config.check_request`), naming it. Contents whose
    header is unreadable are left to the loader, which names them."""
    for label, content, config in runs:
        size = header_size(content) if isinstance(content, (str, Path)) else None
        if size is not None:
            try:
                config.check_request(size)
            except ConfigError as err:
                raise ConfigError(f"{label}: {err}") from None
