"""``restyle export``: a fast model as an ONNX file, to run with onnxruntime and no torch."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export a fast model to ONNX (runs with onnxruntime, without torch)",
        description="Write the fast model MODEL to OUTPUT (.onnx, opset 17) with its record (styles, shape, "
                    "training) as metadata. Run it with `restyle run PHOTO --fast-model OUTPUT` or "
                    "restyle.fastonnx.OnnxModel, which needs only numpy, Pillow and onnxruntime. Needs the onnx "
                    "extra: pip install restyle[onnx].")
    p.add_argument("model", metavar="MODEL", help="a .pt fast model, or a bundled model or style name")
    p.add_argument("output", metavar="OUTPUT", help="the .onnx file to write")
    p.add_argument("--int8", action="store_true", help="quantise the convolutions to int8 (calibrated on the "
                   "bundled example photos): faster on CPU (about 0.7x the time), a few grey levels less exact")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from restyle.api import export_fast_model

    path = export_fast_model(args.model, args.output, int8=args.int8)
    print(f"wrote {path}")
    return 0
