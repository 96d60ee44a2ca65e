"""The quality cost of a shorter L-BFGS history (issue 12: keeping the history within --max-memory).

    python bench/history.py --pairs 50,20,10,5,3,2 --size 256 --iterations 100 -o bench/out/history

Each image-sized L-BFGS pair (s, y) takes 24 bytes a pixel in float32 (two RGB vectors): 50 pairs
are 1.2 KB a pixel, as much as an untiled bf16 forward and backward. This runs the default
objective on a few panel photos with each history length, from the same start, and reports the
final loss against the longest history's and the largest rise of the loss over its running
minimum. Results go to OUT/history.jsonl and a markdown table on stdout (docs/large.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from quality import EXAMPLES, PANEL, max_rise  # noqa: E402
from restyle.config import Config  # noqa: E402
from restyle.engine.loop import OptimizerSettings, optimise  # noqa: E402
from restyle.engine.transfer import StyleTransfer  # noqa: E402


def run(photo: str, painting: str, size: int, iterations: int, pairs: int) -> dict:
    st = StyleTransfer(Config(size=size, iterations=iterations, device="cpu", seed=0))
    content, styles = st.load_sources(str(PANEL / f"{photo}.jpg"), [str(EXAMPLES / f"{painting}.jpg")])
    st.set_targets(*st.resize_inputs(content, styles, size))
    torch.manual_seed(0)
    x0 = st.initial_image()
    start = time.perf_counter()
    stage = optimise(st.losses, x0, iterations=iterations, optimizer=OptimizerSettings(history=pairs))
    totals = [row["total"] for row in stage.rows]
    return {"photo": photo, "painting": painting, "size": size, "iterations": iterations, "pairs": pairs,
            "final_loss": totals[-1], "max_rise": max_rise(totals), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="50,20,10,5,3,2")
    ap.add_argument("--photos", default="astronaut,hubble")
    ap.add_argument("--painting", default="starry_night")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--out", default="bench/out/history")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [int(p) for p in args.pairs.split(",")]
    rows = []
    with open(out / "history.jsonl", "a") as f:
        for photo in args.photos.split(","):
            for k in pairs:
                r = run(photo, args.painting, args.size, args.iterations, k)
                rows.append(r)
                f.write(json.dumps(r) + "\n")
                f.flush()
                print(f"{photo} {k} pairs: loss {r['final_loss']:.4g}, rise {r['max_rise']:.2f}, "
                      f"{r['seconds']:.1f} s", file=sys.stderr)
    ref = {r["photo"]: r["final_loss"] for r in rows if r["pairs"] == max(pairs)}
    print(f"| pairs | MB a megapixel | final loss / {max(pairs)} pairs' (per photo) | median | largest rise |")
    print("|---|---|---|---|---|")
    for k in pairs:
        rs = [r for r in rows if r["pairs"] == k]
        ratios = [r["final_loss"] / ref[r["photo"]] for r in rs]
        print(f"| {k} | {k * 24:.0f} | {', '.join(f'{x:.3f}' for x in ratios)} | {statistics.median(ratios):.3f} | "
              f"{max(r['max_rise'] for r in rs):.2f} |")


if __name__ == "__main__":
    main()
