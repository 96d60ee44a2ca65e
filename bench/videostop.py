"""Video frames under the automatic stop against a fixed count (issue 20: a frame that starts warm
from the one before should stop early).

    python bench/videostop.py -o bench/out/videostop                              # the automatic stop
    python bench/videostop.py -o bench/out/videostop --label n100 --iterations 100 --first-iterations 300
    python bench/videostop.py -o bench/out/videostop --photo astronaut --painting the_scream

Makes a 16-frame 256x144 pan and zoom over a bundled photo (10 fps, as in docs/video.md; ``--size
512``: 512x288), stylises it with the bundled painting and the default temporal weight, and scores
it with ``restyle score --video``'s evaluator. Appends one JSON line to OUT/videostop.jsonl: each
frame's steps (and those of the passes that paint what a pan reveals at the coarse size) and
seconds, the wall seconds, the warping error and the per-frame metrics' means.
Run one at a time on an otherwise idle machine: the seconds are the point.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from restyle import api  # noqa: E402
from restyle.engine.events import Finished  # noqa: E402
from restyle.video import stylize  # noqa: E402
from restyle.video.demo import pan_zoom_clip  # noqa: E402

EXAMPLES = ROOT / "src" / "restyle" / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--label", default="auto")
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--painting", default="starry_night")
    ap.add_argument("--iterations", type=int, default=None, help="-n for every frame (default: the automatic stop)")
    ap.add_argument("--first-iterations", type=int, default=None)
    ap.add_argument("--size", type=int, default=256, help="the clip's width (16:9) and the output's size")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "" if args.size == 256 else f"-{args.size}"
    clip = args.out / f"clip-{args.photo}{tag}.mp4"
    if not clip.exists():
        pan_zoom_clip(str(EXAMPLES / f"{args.photo}.jpg"), str(clip), frames=16, size=(args.size, args.size * 9 // 16),
                      fps=10)
    painting = EXAMPLES / f"{args.painting}.jpg"
    steps: list[int] = []
    coarse: list[int] = []  # steps of the passes at the coarse size (they send no events)
    method_for = stylize.method_for

    def counting(config: Any) -> Any:
        method = method_for(config)
        run = method.run

        def counted(*a: Any, on_event: Any = None, **kw: Any) -> Any:
            result = run(*a, on_event=on_event, **kw)
            if on_event is None:
                coarse.append(len(result.history))
            return result

        method.run = counted
        return method

    stylize.method_for = counting

    def on_event(event: Any) -> None:
        if isinstance(event, Finished):
            steps.append(event.iterations)

    options: dict[str, Any] = {} if args.iterations is None else {"iterations": args.iterations}
    output = args.out / f"{args.photo}-{args.painting}-{args.label}{tag}.mp4"
    t0 = time.perf_counter()
    result = api.stylize_video(clip, [painting], output=output, size=args.size, first_iterations=args.first_iterations,
                               work_dir=args.out / f"{output.stem}.work", on_event=on_event, **options)
    wall = time.perf_counter() - t0
    scores = api.score_video(output, clip, [painting])
    record = {"label": args.label, "size": args.size, "photo": args.photo, "painting": args.painting, "iterations": args.iterations,
              "first_iterations": args.first_iterations, "wall": round(wall, 2),
              "frame_seconds": [round(s, 2) for s in result.frame_seconds], "steps": steps,
              "coarse_steps": coarse,
              "warping_error": scores.warping_error, "metrics": scores.metrics}
    with open(args.out / "videostop.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    later = steps[1:]
    print(f"{args.photo} x {args.painting} {args.label}: {wall:.1f} s, {sum(steps)} steps "
          f"(and {sum(coarse)} at the coarse size) "
          f"(first frame {steps[0]}, later frames median {statistics.median(later) if later else '-'}), "
          f"warping error {scores.warping_error:.6f}, "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.metrics.items()))


if __name__ == "__main__":
    main()
