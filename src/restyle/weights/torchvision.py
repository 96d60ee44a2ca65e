"""torchvision VGG state dicts (``vgg16-397923af.pth``, ``vgg19-dcbb9e9d.pth``), and their download.

A torchvision VGG keeps its convs in ``features``: ``features.{i}.weight`` / ``.bias``, where
``i`` counts every conv, ReLU and pool (so vgg16's convs sit at 0, 2, 5, 7, 10, ...).
``classifier.*`` keys are ignored; a dict wrapped under ``"state_dict"`` and keys prefixed
``module.`` (DataParallel) are accepted. These weights expect the "torch" input convention.

(This module never imports the torchvision package; its name only describes the format.)
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import torch
import torch.hub

from restyle.errors import WeightsError, notice
from restyle.spec import ARCHS, CONV_NAMES, TORCH
from restyle.weights.base import VGGWeights, load_torch_file, validated

URLS: dict[str, str] = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}
"""Where each file is downloaded from; its name carries the sha256 prefix the file must have."""

BASE_URL_ENV = "RESTYLE_WEIGHTS_BASE_URL"
"""Environment variable replacing the folder of the URLs above (a mirror, or a test server)."""

DOWNLOAD_TIMEOUT_S = 60.0

_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # as torch.hub.HASH_REGEX
_FEATURE_WEIGHT = re.compile(r"features\.(\d+)\.weight")


def conv_indices(arch: str) -> list[int]:
    """Index in ``features`` of each conv of ``arch``, in network order: each conv is followed
    by its ReLU, each block by its pool."""
    indices: list[int] = []
    i = 0
    for block in range(1, 6):
        n_convs = sum(1 for name in CONV_NAMES[arch] if name.startswith(f"block{block}_"))
        indices += range(i, i + 2 * n_convs, 2)
        i += 2 * n_convs + 1
    return indices


def filename(arch: str) -> str:
    """``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth``."""
    return urlsplit(URLS[arch]).path.rsplit("/", 1)[-1]


def url(arch: str) -> str:
    """The download URL for ``arch``, with its folder replaced by ``$RESTYLE_WEIGHTS_BASE_URL``."""
    base = os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{filename(arch)}" if base else URLS[arch]


def checkpoint_dir() -> Path:
    """The torch hub cache, where torchvision keeps its downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(arch: str) -> Path:
    """Where the downloaded file for ``arch`` is (or would be) cached."""
    return checkpoint_dir() / filename(arch)


def download(arch: str) -> VGGWeights:
    """The torchvision weights for ``arch``, downloaded into the torch hub cache unless already there."""
    dst = cached_path(arch)
    if not dst.is_file():
        _fetch(url(arch), dst)
    return load(arch, dst)


def load(arch: str, path: Path) -> VGGWeights:
    """Read a torchvision VGG state dict."""
    state = _state_dict(load_torch_file(path), path)
    if any(key.endswith("running_mean") for key in state):
        raise WeightsError(
            f"weights file '{path}' holds batch-norm VGG weights, which restyle does not support: use {filename(arch)}"
        )
    found = {int(m[1]) for key in state if (m := _FEATURE_WEIGHT.fullmatch(key))}
    if not found:
        raise WeightsError(f"weights file '{path}' holds no torchvision VGG conv weights (features.N.weight)")
    # Name the convs after the layout they match best (on a tie, the one asked for), so that a
    # VGG19 file given for --model vgg16 is reported as such rather than as shape errors.
    layout = min(ARCHS, key=lambda a: (len(found.symmetric_difference(conv_indices(a))), a != arch))
    convs: dict[str, tuple[object, object]] = {}
    for name, i in zip(CONV_NAMES[layout], conv_indices(layout), strict=True):
        w, b = state.get(f"features.{i}.weight"), state.get(f"features.{i}.bias")
        if w is not None and b is not None:
            convs[name] = (w, b)
    return validated(arch, convs, convention=TORCH, source=str(path), path=path)


def _state_dict(obj: object, path: Path) -> dict[str, object]:
    """The flat state dict in ``obj``: unwrapped from ``"state_dict"``, ``module.`` prefixes removed."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file '{path}' holds a {type(obj).__name__}, not a state dict")
    return {str(key).removeprefix("module."): value for key, value in obj.items()}


def _fetch(source: str, dst: Path) -> None:
    """Download ``source`` to ``dst`` (via a temporary name in the same folder, renamed when
    complete), refusing a file whose sha256 does not start with the hash in its name."""
    m = _HASH_IN_NAME.search(dst.name)
    hash_prefix = m[1] if m else None
    how_to = (
        f"pass --weights PATH to a local {dst.name} (or a Keras .h5 file), or --model vgg19 to use the embedded VGG19"
    )
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the weights cache '{dst.parent}' ({exc.strerror or exc})") from exc
    notice(f"downloading {source} to {dst}")
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            # Writes to "<dst>.<uuid>.partial", checks the hash, then renames; removes the partial file on failure.
            torch.hub.download_url_to_file(source, str(dst), hash_prefix=hash_prefix, progress=True)
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise
        raise WeightsError(
            f"downloaded {source} but its sha256 does not start with {hash_prefix}, so it was not saved: "
            f"retry, or {how_to}"
        ) from exc
    except (OSError, HTTPException, ValueError) as exc:  # URLError, timeouts, cut connections, bad URL
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise WeightsError(f"could not download {source} (offline?): {how_to} ({reason})") from exc


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound how long a stalled connection may hang (torch.hub's urlopen sets no timeout)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
