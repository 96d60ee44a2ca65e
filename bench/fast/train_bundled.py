"""Trains the bundled fast model (``restyle/models/paintings.pt``: the three bundled paintings in
one network) on the photo folder bench/fast/photos.py builds; rerun to resume from its checkpoint.

    python bench/fast/train_bundled.py PHOTOS OUT.pt [--steps 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from restyle.config import Config
from restyle.nn.transformer import NetShape
from restyle.train import TrainOptions, TrainProgress, TrainSample, train

EXAMPLES = Path(__import__("restyle").__file__).resolve().parent / "examples"
PAINTINGS = ["starry_night.jpg", "the_scream.jpg", "woman-with-hat-matisse.jpg"]
#: The bundled recipe: 192-px crops, the paintings at 384 px, batch 3 (one crop per painting).
RECIPE = dict(crop=192, style_scale=2.0, batch=3, width=12, blocks=4, kernel=5, lr=1e-3, every=250)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("photos")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    r = RECIPE
    out = Path(args.out)
    resume = out.with_name(out.stem + ".ckpt.pt").is_file()
    t0 = time.time()

    def show(e: object) -> None:
        if isinstance(e, TrainProgress) and (e.step % 25 == 0 or e.step == e.steps):
            print(f"step {e.step}/{e.steps} loss {e.losses['smoothed']:.3f} content {e.losses['content']:.3f} "
                  f"style {e.losses['style']:.4f} tv {e.losses['tv']:.4f} {e.seconds:.0f}s eta {e.eta:.0f}s", flush=True)
        elif isinstance(e, TrainSample):
            print("sample", e.path, flush=True)
        elif not isinstance(e, TrainProgress):
            print(e, flush=True)

    train([EXAMPLES / p for p in PAINTINGS], args.photos, out, Config(size=r["crop"], style_scale=r["style_scale"]),
          NetShape(r["width"], r["blocks"], r["kernel"]),
          TrainOptions(steps=args.steps, batch=r["batch"], lr=r["lr"], every=r["every"], held_out=2),
          resume=resume, on_event=show)
    print(f"done in {time.time() - t0:.0f}s wall", file=sys.stderr)


if __name__ == "__main__":
    main()
