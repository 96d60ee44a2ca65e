"""Fast models for other runtimes: export to ONNX (the restyle[onnx] extra: onnx and onnxruntime
load when an export runs)."""

from __future__ import annotations

from pathlib import Path


def export_fast_model(model: str, output: str | Path, *, int8: bool = False) -> Path:
    """Write the fast model ``model`` (a ``.pt`` file, or a bundled model or style name, as
    ``--fast-model`` takes it) to ``output`` (``.onnx``), which onnxruntime runs without torch
    (:class:`restyle.fastonnx.OnnxModel`, or ``restyle run --fast-model OUT.onnx``); ``int8``:
    statically quantised convolutions, faster on CPU and slightly less exact
    (:mod:`restyle.train.export`). Returns the path written."""
    from restyle.train.export import export_onnx

    return export_onnx(model, output, int8=int8)
