"""Runs fast models exported to ONNX (``restyle export``) with onnxruntime, without torch.

This module imports numpy, Pillow, onnxruntime and :mod:`restyle.errors` only, so a program that
only stylises with exported models needs neither torch (about 1 GB installed, 1.3 s to import) nor
the rest of restyle. onnxruntime itself is imported when a model is first opened: a missing
onnxruntime is a one-line :class:`~restyle.errors.ConfigError` naming ``pip install restyle[onnx]``.

An exported model (:func:`restyle.train.export.export_onnx`) has the inputs ``image``
(``1 x 3 x H x W`` float32 in [0, 1], H and W multiples of 4) and ``blend`` (``S`` float32, one
weight per style, summing to 1) and the output ``image_out`` (the same shape as ``image``, in
[0, 1]). Its record is JSON under the metadata key ``restyle``: ``format``
(:data:`FORMAT`), ``version`` (:data:`FORMAT_VERSION`, the model-file format of
:mod:`restyle.methods.fastmodel` it was exported from), ``styles`` (name and SHA-256 each),
``shape``, ``steps``, ``photos``, ``restyle`` (the version that trained it), ``precision``
(``fp32`` or ``int8``) and, when the exported name selected one style of a bundled model,
``blend``.

The sides must be multiples of 4 because the network halves the resolution twice; torch's
network pads them itself, but that ``if`` is traced away on export, so :meth:`OnnxModel.forward`
pads by reflection (as the network does) and crops back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from restyle.blend import blend_weights
from restyle.errors import ConfigError, InputImageError

FORMAT = "restyle-fast-onnx"
#: The model-file format (restyle.methods.fastmodel.FORMAT_VERSION) this restyle reads; a test pins
#: the two equal (this module cannot import that one: it imports torch).
FORMAT_VERSION = 1
METADATA_KEY = "restyle"
#: The network halves the resolution twice: its input sides are multiples of this.
MULTIPLE = 4
INSTALL = "pip install restyle[onnx]"


def onnxruntime() -> Any:
    """The onnxruntime module, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"running ONNX models needs onnxruntime: {INSTALL}") from None
    return ort


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxModel:
    """An exported fast model, opened once: one onnxruntime session (CPU, intra-op threads = the
    CPUs available) reused by every call. ``styles``: the style names in blend order; ``record``:
    the metadata (see the module docstring). A missing file, a file that is not ONNX, an ONNX model
    that is not a restyle fast model and one of another format version are one-line
    :class:`ConfigError`\\ s."""

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self.path = Path(path)
        label = f"ONNX model '{self.path}'"
        if not self.path.is_file():
            raise ConfigError(f"{label} does not exist")
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - any file onnxruntime cannot load is the same one-line error
            raise ConfigError(f"{label} is not an ONNX model ({type(err).__name__})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        try:
            record = json.loads(meta) if meta is not None else None
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ConfigError(f"{label} is not a restyle fast model (no restyle record in its metadata; "
                              "export one with restyle export)")
        if record.get("version") != FORMAT_VERSION:
            raise ConfigError(f"{label} is of model format {record.get('version')}; this restyle reads format "
                              f"{FORMAT_VERSION}: export it again with this version")
        inputs = {i.name for i in self.session.get_inputs()}
        if inputs != {"image", "blend"} or not record.get("styles"):
            raise ConfigError(f"{label} is damaged: its inputs ({', '.join(sorted(inputs))}) or styles do not "
                              "fit a restyle fast model")
        self.record: dict[str, Any] = record
        self.output = self.session.get_outputs()[0].name

    @property
    def styles(self) -> list[str]:
        return [s["name"] for s in self.record["styles"]]

    @property
    def precision(self) -> str:
        return str(self.record.get("precision", "fp32"))

    def weights(self, blend: Sequence[float] | None = None) -> np.ndarray:
        """The blend as the model takes it: one weight per style, normalised to sum 1. None: the
        record's blend (a style the exported name selected), else equal weights."""
        n = len(self.styles)
        chosen = blend if blend is not None else self.record.get("blend") or [1.0] * n
        weights = blend_weights(chosen, self.styles, what="the blend", holder="the ONNX model")
        return np.asarray(weights, dtype=np.float32) / np.float32(sum(weights))

    def forward(self, pixels: np.ndarray, blend: Sequence[float] | None = None) -> np.ndarray:
        """The network's picture of ``pixels`` (``1 x 3 x H x W`` float32 in [0, 1], any H and W
        of at least 2): padded by reflection to multiples of 4, run, cropped back; in [0, 1]."""
        x = np.ascontiguousarray(pixels, dtype=np.float32)
        if x.ndim != 4 or x.shape[:2] != (1, 3):
            raise ConfigError(f"the ONNX model takes a 1x3xHxW image, not {'x'.join(map(str, x.shape))}")
        h, w = x.shape[2:]
        ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
        try:
            (out,) = self.session.run([self.output], {"image": x, "blend": self.weights(blend)})
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - e.g. an image too small for the network's padding
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"the ONNX model failed on a {w}x{h} image: {first}") from None
        return np.clip(out[:, :, :h, :w], 0.0, 1.0)

    def stylise(self, image: str | Path | Image.Image | np.ndarray, *, size: int | None = None,
                blend: Sequence[float] | None = None) -> Image.Image:
        """``image`` (a path, a PIL image or an ``H x W x 3`` uint8 array) stylised, as an RGB
        image; ``size``: first scale it (LANCZOS) so its longest side is ``size``; ``blend``: one
        weight per style (normalised; default as :meth:`weights`)."""
        img = load_rgb(image)
        if size is not None:
            img = resize_longest(img, size)
        pixels = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(255)
        out = self.forward(pixels, blend)[0].transpose(1, 2, 0)
        return Image.fromarray(np.rint(out * 255).astype(np.uint8), "RGB")


def load_rgb(image: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """``image`` as an RGB PIL image (a file: EXIF orientation applied); a file that is not an
    image is a one-line :class:`InputImageError`."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ConfigError(f"an image array must be H x W x 3 uint8, not {image.shape} {image.dtype}")
        return Image.fromarray(image, "RGB")
    try:
        with Image.open(image) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except FileNotFoundError:
        raise InputImageError(f"image '{image}' does not exist") from None
    except Exception as err:  # noqa: BLE001 - unreadable, truncated, a decompression bomb: one line
        raise InputImageError(f"image '{image}' cannot be read ({type(err).__name__})") from None


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """``img`` scaled (LANCZOS) so its longest side is ``size``, each side at least 2 pixels (as
    :func:`restyle.io.images.resize_longest`)."""
    if size < 2:
        raise ConfigError(f"size must be at least 2, not {size}")
    width, height = img.size
    scale = size / max(width, height)
    target = max(2, round(width * scale)), max(2, round(height * scale))
    return img if target == img.size else img.resize(target, Image.Resampling.LANCZOS)


_cache: dict[tuple[str, float], OnnxModel] = {}


def load(path: str | Path) -> OnnxModel:
    """The :class:`OnnxModel` at ``path``, opened once per file and modification time (creating
    a session took 75-90 ms for the bundled recipe's shape on 2 busy cores: more than a run at 256 px)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"ONNX model '{path}' does not exist")
    key = (str(file.resolve()), file.stat().st_mtime)
    if key not in _cache:
        _cache[key] = OnnxModel(file)
    return _cache[key]
