"""Milliseconds per image of a fast model: torch fp32, onnxruntime fp32 and onnxruntime int8
(static, convolutions only; restyle.train.export), at 256, 512 and 1024 px (the longest side of a
4:3 photo), each the minimum of several runs after a warm-up, on a fixed number of threads.

    python bench/fast/speed.py [MODEL.pt | --shape WIDTH,BLOCKS,KERNEL,STYLES] [--sizes 256,512,1024]
                               [--threads 2] [--runs 5] [--json out.json]

Default model: the bundled recipe's shape, NetShape(12, 4, 5, styles=3), with random weights
(speed does not depend on the weights; int8 closeness does, so give a trained model to judge it). Prints a markdown table (with the int8 output's mean absolute difference from
fp32, on the bundled chelsea.jpg) and writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from restyle.fastonnx import OnnxModel, load_rgb, resize_longest
from restyle.methods.fastmodel import encode_png, load_model, save_model
from restyle.nn.transformer import NetShape, TransformerNet
from restyle.train.export import export_onnx

PHOTO = Path(__import__("restyle").__file__).resolve().parent / "examples" / "chelsea.jpg"


def random_model(shape: NetShape, path: Path) -> Path:
    """A model file of ``shape`` with random weights (styles visibly different)."""
    torch.manual_seed(0)
    net = TransformerNet(shape)
    with torch.no_grad():
        for p in net.style_parameters():
            p.add_(0.5 * torch.randn_like(p))
    swatch = encode_png(Image.new("RGB", (16, 16), (128, 128, 128)))
    record = {"styles": [{"name": f"style{i + 1}", "sha256": "0" * 64, "png": swatch} for i in range(shape.styles)],
              "config": {}, "options": {}, "shape": shape.as_dict(), "steps": 0, "photos": 0}
    save_model(path, net, record)
    return path


def best_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up: allocations, onnxruntime's kernel choice
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def photo(side: int, square: bool = False) -> np.ndarray:
    """chelsea.jpg scaled so its longest side is ``side`` (``square``: its centre square, ``side`` x
    ``side``), as 1 x 3 x H x W float32 in [0, 1]."""
    img = load_rgb(PHOTO)
    if square:
        short = min(img.size)
        left, top = (img.width - short) // 2, (img.height - short) // 2
        img = img.crop((left, top, left + short, top + short))
    img = resize_longest(img, side)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(255)


def measure(side: int, net: TransformerNet, fp32: OnnxModel, int8: OnnxModel, blend: list[float],
            runs: int, square: bool = False) -> dict[str, Any]:
    """One row: the three runtimes' milliseconds at ``side`` px and int8's mean difference from fp32."""
    x = photo(side, square)
    tx, tb = torch.from_numpy(x), torch.tensor(blend)
    with torch.inference_mode():
        torch_ms = best_ms(lambda: net(tx, tb), runs)
    return {"side": side, "height": x.shape[2], "width": x.shape[3], "torch_fp32_ms": torch_ms,
            "onnx_fp32_ms": best_ms(lambda: fp32.forward(x, blend), runs),
            "onnx_int8_ms": best_ms(lambda: int8.forward(x, blend), runs),
            "int8_mean_abs_diff": float(np.abs(int8.forward(x, blend) - fp32.forward(x, blend)).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="a .pt fast model (default: random weights of --shape)")
    p.add_argument("--shape", default="12,4,5,3", help="WIDTH,BLOCKS,KERNEL,STYLES of the random model")
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", default="fast_speed.json", help="where to write the results")
    p.add_argument("--square", action="store_true", help="square images (the photo's centre square)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        source = Path(args.model) if args.model else random_model(
            NetShape(*(int(v) for v in args.shape.split(","))), Path(work) / "random.pt")
        fast = load_model(str(source))
        fp32 = OnnxModel(export_onnx(str(source), Path(work) / "fp32.onnx"), threads=args.threads)
        int8 = OnnxModel(export_onnx(str(source), Path(work) / "int8.onnx", int8=True), threads=args.threads)
        sizes_mb = {k: Path(m.path).stat().st_size / 2**20 for k, m in (("fp32", fp32), ("int8", int8))}
        styles = len(fast.style_names)
        blend = [1.0 / styles] * styles
        rows = []
        for side in (int(s) for s in args.sizes.split(",")):
            row = measure(side, fast.net, fp32, int8, blend, args.runs, args.square)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    result = {"model": str(args.model or f"random NetShape({args.shape})"), "shape": fast.net.shape.as_dict(),
              "threads": args.threads, "runs": args.runs, "file_mb": sizes_mb, "rows": rows}
    print(f"model {result['model']}, {args.threads} threads, min of {args.runs} runs after a warm-up; "
          f"files: fp32 {sizes_mb['fp32']:.2f} MB, int8 {sizes_mb['int8']:.2f} MB\n")
    print("| px (HxW) | torch fp32 ms | onnxruntime fp32 ms | onnxruntime int8 ms | int8 mean abs diff |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} ({r['height']}x{r['width']}) | {r['torch_fp32_ms']:.1f} | {r['onnx_fp32_ms']:.1f} | "
              f"{r['onnx_int8_ms']:.1f} | {r['int8_mean_abs_diff']:.4f} |")
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
