"""Universal-method video at 256x144: speed and flicker beside independent frames and the optimiser.

Makes a pan-and-zoom clip of a held-out photo (real camera motion, :mod:`restyle.video.demo`), then
runs :func:`restyle.api.stylize_video` end to end with ``method="universal"`` and a held-out
painting, for each ``--temporal-blend`` A (0 = independent frames), and the optimiser's video mode
(its temporal loss, ``--optimiser-iterations`` per frame) on the same clip. Each output is scored
by :func:`restyle.api.score_video`: the warping error (Lai et al. 2018) and the mean per-frame
style distance. Prints JSON and a markdown table.

    python bench/universal/video.py --photo PHOTO --painting PAINTING [--frames 24] [--blends 0,0.3,0.5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from restyle import api
from restyle.video.demo import pan_zoom_clip

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", type=Path, required=True)
    ap.add_argument("--painting", type=Path, default=HERE / "paintings" / "contrast_of_forms.jpg")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--blends", default="0,0.3,0.5")
    ap.add_argument("--decoder", default=None)
    ap.add_argument("--optimiser-iterations", type=int, default=0, help="0: skip the optimiser's video")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="restyle-universal-video-"))
    clip = pan_zoom_clip(args.photo, work / "clip.mp4", frames=args.frames, size=(args.size, round(args.size * 9 / 16)),
                         fps=24, tone=None)
    own = {"decoder": args.decoder} if args.decoder else {}
    options = dict(size=args.size, device="cpu", method="universal", method_options=own)
    api.stylize_video(clip, [args.painting], output=work / "warm.mp4", frames="0:3", **options)
    rows = []
    runs: list[tuple[str, float | None]] = [("universal", float(a)) for a in args.blends.split(",")]
    if args.optimiser_iterations:
        runs.append(("optimise", None))
    for method, blend in runs:
        out = work / f"{method}-{blend}.mp4"
        t0 = time.perf_counter()
        if method == "universal":
            result = api.stylize_video(clip, [args.painting], output=out, temporal_blend=blend, **options)
        else:
            result = api.stylize_video(clip, [args.painting], output=out, size=args.size, device="cpu",
                                       iterations=args.optimiser_iterations)
        seconds = time.perf_counter() - t0
        scores = api.score_video(out, clip, [args.painting])
        rows.append({"method": method, "temporal_blend": blend, "frames": result.frames,
                     "fps_end_to_end": round(result.frames / seconds, 2),
                     "warping_error": round(scores.warping_error, 6),
                     "input_warping_error": round(scores.input_warping_error, 6),
                     "style_distance": round(scores.metrics.get("style_distance", float("nan")), 4),
                     "content_distance": round(scores.metrics.get("content_distance", float("nan")), 4)})
        print(json.dumps(rows[-1]), flush=True)
    import torch

    print(json.dumps({"photo": str(args.photo), "painting": str(args.painting), "threads": torch.get_num_threads(),
                      "clip": f"{args.frames} frames, {args.size} px, 24 fps pan and zoom", "runs": rows}, indent=1))
    print("| method | blend | fps end to end | warping error | style distance | content distance |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['temporal_blend']} | {r['fps_end_to_end']} | {r['warping_error']:.6f} | "
              f"{r['style_distance']} | {r['content_distance']} |")


if __name__ == "__main__":
    main()
