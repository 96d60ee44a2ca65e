"""Export of fast models to ONNX (``restyle export``), to run with onnxruntime and no torch
(:mod:`restyle.fastonnx`).

The graph is opset 17, traced (``torch.onnx.export(..., dynamo=False)``) at 64 x 64 with a
one-dimensional blend, so every conditional norm becomes a single InstanceNormalization node,
with H and W left dynamic. The tracer drops the network's padding of sides that are not multiples
of 4 (a Python ``if``), so the exported graph takes multiples of 4 and the runner pads.

``int8``: static quantisation of the convolutions (QDQ, per-tensor int8, onnxruntime's
``quantize_static`` after ``quant_pre_process``), calibrated on the bundled example photos at
256 px (the paintings among the examples left out) under every one-style blend and the equal
blend, so the ranges cover each style. Measured on 2 CPU cores at 512 x 512 (NetShape(12, 4, 5),
random weights): about 70 ms against 96-112 ms for fp32; the file is a third of the size (0.26
against 0.79 MB); the picture moves by 0.02 on average (5 grey levels) at 512 px with random
weights (bench/fast/speed.py; tests/fast/test_onnx.py bounds it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restyle import fastonnx
from restyle.errors import ConfigError, OutputError
from restyle.methods.fastmodel import FORMAT_VERSION, FastModel, load_model, resolve

OPSET = 17
#: The side the graph is traced at (any multiple of 4; H and W stay dynamic).
TRACE_SIDE = 64
CALIBRATION_SIDE = 256
#: Bundled examples that are paintings, not photos: not what a fast model is run on.
PAINTINGS = ("starry_night", "the_scream", "woman-with-hat-matisse")


def require_onnx() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or a one-line :class:`ConfigError` naming the extra to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ConfigError(f"exporting to ONNX needs {err.name}: {fastonnx.INSTALL}") from None
    return onnx, onnxruntime


def export_onnx(model: str, output: str | Path, *, int8: bool = False) -> Path:
    """Write the fast model ``model`` (a path, or a bundled model or style name, as
    ``--fast-model`` takes it) to ``output`` (``.onnx``) as an ONNX graph with its record as
    metadata (:mod:`restyle.fastonnx` describes both); ``int8``: statically quantised. The file is
    written to a temporary name and renamed, so ``output`` is never half written. Returns
    ``output``."""
    onnx, _ = require_onnx()
    out = Path(output).expanduser()
    source, _ = resolve(model)
    if out.resolve() == source.resolve():
        raise ConfigError(f"the ONNX output '{output}' is the model it is exported from: give another path")
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"the ONNX output '{output}' must end in .onnx")
    fast = load_model(model)
    if not out.parent.is_dir():
        raise OutputError(f"cannot write '{output}': folder '{out.parent}' does not exist")
    with tempfile.TemporaryDirectory(prefix="restyle-export-") as work:
        graph = Path(work) / "model.onnx"
        trace(fast, graph)
        if int8:
            graph = quantise(graph, Path(work), len(fast.style_names))
        proto = onnx.load(str(graph))
        entry = proto.metadata_props.add()
        entry.key, entry.value = fastonnx.METADATA_KEY, json.dumps(metadata(fast, int8))
        proto.doc_string = f"restyle fast model ({', '.join(fast.style_names)})"
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            onnx.save(proto, str(tmp))
            os.replace(tmp, out)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write '{output}': {err.strerror or err}") from None
    return out


def metadata(fast: FastModel, int8: bool) -> dict[str, Any]:
    """The record an exported model carries: the model's, without the paintings' pixels."""
    record = fast.record
    meta: dict[str, Any] = {
        "format": fastonnx.FORMAT, "version": FORMAT_VERSION,
        "styles": [{"name": s["name"], "sha256": s.get("sha256")} for s in record.get("styles", [])],
        "shape": fast.net.shape.as_dict(), "steps": record.get("steps"), "photos": record.get("photos"),
        "restyle": record.get("restyle"), "precision": "int8" if int8 else "fp32",
    }
    if fast.blend is not None:
        meta["blend"] = fast.blend
    return meta


def trace(fast: FastModel, path: Path) -> None:
    """The network as an fp32 ONNX graph at ``path`` (inputs ``image``, ``blend``; output ``image_out``)."""
    styles = len(fast.style_names)
    net = fast.net.cpu().eval()
    image = torch.rand(1, 3, TRACE_SIDE, TRACE_SIDE)
    blend = torch.full((styles,), 1.0 / styles)
    sides = {2: "height", 3: "width"}
    with torch.inference_mode(False), torch.no_grad(), quiet():
        torch.onnx.export(net, (image, blend), str(path), input_names=["image", "blend"], output_names=["image_out"],
                          dynamic_axes={"image": sides, "image_out": sides}, opset_version=OPSET, dynamo=False)


def calibration_photos() -> list[np.ndarray]:
    """The bundled example photos at 256 px (longest side), padded to multiples of 4, as
    ``1 x 3 x H x W`` float32 arrays in [0, 1]."""
    folder = Path(str(resources.files("restyle") / "examples"))
    photos = []
    for file in sorted(folder.glob("*.jpg")):
        if file.stem in PAINTINGS:
            continue
        img = fastonnx.resize_longest(fastonnx.load_rgb(file), CALIBRATION_SIDE)
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(255)
        h, w = x.shape[2:]
        photos.append(np.pad(x, ((0, 0), (0, 0), (0, (-h) % fastonnx.MULTIPLE), (0, (-w) % fastonnx.MULTIPLE)),
                             mode="reflect"))
    return photos


def quantise(graph: Path, work: Path, styles: int) -> Path:
    """``graph`` statically quantised (QDQ, convolutions only), written beside it in ``work``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    blends = [np.eye(styles, dtype=np.float32)[i] for i in range(styles)]
    if styles > 1:
        blends.append(np.full(styles, 1.0 / styles, dtype=np.float32))
    feeds = [{"image": x, "blend": b} for x in calibration_photos() for b in blends]

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    prepared, quantised = work / "prepared.onnx", work / "int8.onnx"
    with quiet():
        quant_pre_process(str(graph), str(prepared))
        quantize_static(str(prepared), str(quantised), Photos(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"],
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return quantised


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporter's and quantiser's warnings, which are about the tracing this module
    does on purpose (the padding ``if``, the one-row blend) and symbolic shapes it cannot prove
    equal (the cropped sides): nothing a user can act on."""
    log = logging.getLogger("onnxruntime")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)
