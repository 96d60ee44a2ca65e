"""Peak memory and time of large runs, tiled and untiled (docs/large.md).

Each configuration runs in its own process under ``/usr/bin/time -v`` (peak RSS is per process);
the child reports the loop's seconds per iteration and the stage's tiling. Run one at a time,
niced, on a quiet machine:

    nice -n 19 python bench/large.py --sizes 1024,2048 --tiles none,1024 -n 3
    nice -n 19 python bench/large.py --sizes 4096 --tiles none,1024 -n 1
    nice -n 19 python bench/large.py --sizes 384 --drift 192 -n 30     # tiled vs untiled over many steps

Each run is one stage at the size (``--no-multiscale``); the L-BFGS history's cost: bench/history.py.

On a GPU the peak is torch's CUDA peak (``torch.cuda.max_memory_allocated``) as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"


def child(size: int, tile: int | None, iterations: int, content: str, style: str, device: str) -> None:
    """One run in this process; prints a JSON line with its timings."""
    import torch

    from restyle.config import Config
    from restyle.engine import StyleTransfer

    config = Config(size=size, tile=tile, iterations=iterations, device=device, multiscale=False)
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
    cmd = [sys.executable, __file__, "--child", str(size), str(tile), str(iterations), content, style, device]
    if Path("/usr/bin/time").exists():
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak_kb = int(rss.group(1)) if rss else None
    else:  # (GPU machines without GNU time) the child's own peak, from wait4
        with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
            pid = subprocess.Popen(cmd, stdout=out_f, stderr=err_f).pid
            _, status, usage = os.wait4(pid, 0)
            out_f.seek(0)
            err_f.seek(0)
            proc = subprocess.CompletedProcess(cmd, os.waitstatus_to_exitcode(status), out_f.read(), err_f.read())
        peak_kb = usage.ru_maxrss
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    out = json.loads(line[7:]) if line else {"size": size, "tile": tile, "error": proc.stderr.strip()[-400:]}
    out["peak_rss_gb"] = peak_kb / 2**20 if peak_kb else None
    return out


def drift(size: int, iterations: int, tile: int, content: str, style: str) -> None:
    """Is the gap between a tiled and an untiled run over many steps tiling's, or L-BFGS's
    sensitivity to rounding? Runs fp32 from the same start: untiled, tiled, and untiled from the
    start plus 1e-6 noise (a perturbation of the size of the tiled gradients' error), and prints
    each one's loss against the untiled run's every few steps."""
    import torch

    from restyle.config import Config
    from restyle.engine import StyleTransfer

    base = Config(size=size, iterations=iterations, device="cpu", precision="fp32", multiscale=False)
    start = StyleTransfer(base.replace(iterations=0)).run(content, [style]).pixels
    torch.manual_seed(1)
    nudged = (start + 1e-6 * torch.randn_like(start)).clamp(0, 1)
    runs = {"untiled": (base, start), f"tiled {tile}": (base.replace(tile=tile), start),
            "untiled, start + 1e-6 noise": (base, nudged)}
    losses = {name: [r["total"] for r in StyleTransfer(c).run(content, [style], init_image=x).history]
              for name, (c, x) in runs.items()}
    ref = losses["untiled"]
    marks = sorted(k for k in {1, 2, 5, 10, 20, iterations, *range(0, iterations, max(1, iterations // 4))}
                   if 0 < k <= iterations)
    print("| run | " + " | ".join(f"step {k}" for k in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for name, ls in losses.items():
        cells = [f"{ls[k]:.4g}" if name == "untiled" else f"{100 * (ls[k] / ref[k] - 1):+.2f}%" for k in marks
                 if k < len(ls)]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


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
    ap.add_argument("--drift", type=int, metavar="TILE", help="instead: fp32 losses over -n steps at --sizes' "
                    "first size, tiled with TILE and from a start nudged by 1e-6, against the untiled run's")
    args = ap.parse_args()
    if args.drift:
        drift(int(args.sizes.split(",")[0]), args.iterations, args.drift, args.content, args.style)
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
