"""Builds the bundled models' training photo folder from photos that ship with pip packages
(scikit-image's public-domain/CC0 data, matplotlib's Grace Hopper portrait); none of them is a
photo the models are judged on (docs/fast.md: chelsea, coffee and grace_hopper are held out).

    python bench/fast/photos.py OUT_DIR [--judge JUDGE_DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import matplotlib
import skimage.data

#: Photos trained on (scikit-image data files; grey ones are used as they are, as grey RGB).
TRAIN = ["astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg",
         "retina.jpg", "ihc.png", "camera.png", "moon.png", "coins.png", "brick.png", "grass.png", "gravel.png",
         "page.png", "text.png", "clock_motion.png", "horse.png", "cell.png", "microaneurysms.png", "color.png"]
#: Photos the models are judged on: never trained on.
JUDGE = ["chelsea.png", "coffee.png"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--judge", default=None)
    args = ap.parse_args()
    data = Path(skimage.data.__file__).parent
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in TRAIN:
        if (data / name).is_file():
            shutil.copy(data / name, out / name)
    if args.judge:
        judge = Path(args.judge)
        judge.mkdir(parents=True, exist_ok=True)
        for name in JUDGE:
            shutil.copy(data / name, judge / name)
        hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        shutil.copy(hopper, judge / "grace_hopper.jpg")
    print(len(os.listdir(out)), "training photos in", out)


if __name__ == "__main__":
    main()
