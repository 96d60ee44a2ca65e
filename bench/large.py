"""Peak memory and time of large runs, tiled and untiled (docs/large.md).

Each configuration runs in its own process under ``/usr/bin/time -v`` (peak RSS is per process);
the child reports the loop's seconds per iteration and the stage's tiling. Run one at a time,
niced, on a quiet machine:

    nice -n 19 python bench/large.py --sizes 1024,2048 --tiles none,1024 -n 3
    nice -n 19 python bench/large.py --sizes 4096 --tiles none,1024 -n 1

On a GPU the peak is torch's CUDA peak (``torch.cuda.max_memory_allocated``) as well.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"


def child(size: int, tile: int | None, iterations: int, content: str, style: str, device: str) -> None:
    """One run in this process; prints a JSON line with its timings."""
    import torch

    from restyle.config import Config
    from restyle.engine import StyleTransfer

    config = Config(size=size, tile=tile, iterations=iterations, device=device)
    st = StyleTransfer(config)
    start = time.perf_counter()
    result = st.run(content, [style])
    wall = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated() / 2**30 if st.device.type == "cuda" else None
    print("RESULT " + json.dumps({
        "size": size, "tile": tile, "iterations": iterations, "shape": list(result.image.size),
        "precision": st.precision, "run_s": wall, "loop_s": st.loop_seconds,
        "s_per_iter": st.loop_seconds / max(1, iterations), "final_loss": result.final_loss,
        "notes": result.notes, "cuda_peak_gb": cuda_peak}), flush=True)


def measure(size: int, tile: int | None, iterations: int, content: str, style: str, device: str) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", str(size), str(tile), str(iterations),
           content, style, device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    out = json.loads(line[7:]) if line else {"size": size, "tile": tile, "error": proc.stderr.strip()[-400:]}
    out["peak_rss_gb"] = int(rss.group(1)) / 2**20 if rss else None
    return out


def history_cost(size: int, iterations: int, pairs: list[int], content: str, style: str) -> None:
    """Final loss of an L-BFGS run against the number of history pairs it keeps (the history is
    image-sized: 2 x 12 bytes a pixel a pair). The pairs are set through the loop's byte cap."""
    import restyle.engine.loop as loop
    from restyle.config import Config
    from restyle.engine import StyleTransfer

    print("| pairs | history MB | final loss | vs 50 pairs |")
    print("|---|---|---|---|")
    first = None
    for m in pairs:
        st = StyleTransfer(Config(size=size, iterations=iterations, device="cpu"))
        content_img, _ = st.load_inputs(content, [style])
        pair_bytes = 2 * 3 * content_img.size[0] * content_img.size[1] * 4
        loop.HISTORY_BYTES = m * pair_bytes
        loss = st.run(content, [style]).final_loss
        first = loss if first is None else first
        print(f"| {m} | {m * pair_bytes / 2**20:.0f} | {loss:.4f} | {100 * (loss / first - 1):+.1f}% |", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        size, tile, n, content, style, device = sys.argv[2:8]
        child(int(size), None if tile == "None" else int(tile), int(n), content, style, device)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--tiles", default="none,1024", help="tile sizes to run; none = untiled")
    ap.add_argument("-n", "--iterations", type=int, default=3)
    ap.add_argument("--content", default=str(EXAMPLES / "chelsea.jpg"))
    ap.add_argument("--style", default=str(EXAMPLES / "starry_night.jpg"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="append each result as a JSON line to this file")
    ap.add_argument("--history-cost", metavar="PAIRS", help="instead: final loss at --sizes' first size against "
                    "these L-BFGS history sizes, e.g. 50,20,10,5")
    args = ap.parse_args()
    if args.history_cost:
        history_cost(int(args.sizes.split(",")[0]), args.iterations, [int(p) for p in args.history_cost.split(",")],
                     args.content, args.style)
        return
    print("| size | tile | shape | iterations | peak RSS GB | CUDA peak GB | s/iteration | run s | final loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in [int(s) for s in args.sizes.split(",")]:
        for t in args.tiles.split(","):
            tile = None if t == "none" else int(t)
            if tile is not None and tile >= size:
                continue
            r = measure(size, tile, args.iterations, args.content, args.style, args.device)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            if "error" in r:
                print(f"| {size} | {tile or 'untiled'} | failed: {r['error'][-120:]!r} | | {r['peak_rss_gb']} | | | | |")
                continue
            cuda = f"{r['cuda_peak_gb']:.2f}" if r["cuda_peak_gb"] is not None else "-"
            print(f"| {size} | {tile or 'untiled'} | {r['shape'][0]}x{r['shape'][1]} | {r['iterations']} | "
                  f"{r['peak_rss_gb']:.2f} | {cuda} | {r['s_per_iter']:.1f} | {r['run_s']:.0f} | "
                  f"{r['final_loss']:.4g} |", flush=True)


if __name__ == "__main__":
    main()
