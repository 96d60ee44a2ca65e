"""restyle vs pastiche: ms/iteration, start-up, peak memory, loss after N iterations and after T seconds.

    python bench/bench.py                       # CPU (and CUDA when present), 256/512/1024
    python bench/bench.py --sizes 256,512 --devices cpu --markdown docs/performance.md

Every measurement runs in its own child process (so peak RSS is that run's alone). Both tools
optimise the same objective: restyle's Gatys default (VGG19 embedded weights, content
block4_conv2, style block1_conv1..block5_conv1, L-BFGS, content init, no TV), with pastiche's
per-layer weights set so its loss equals restyle's relative losses. Final images of both are
scored by one evaluator: restyle's objective in fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"
CONTENT = EXAMPLES / "astronaut.jpg"  # square, so size x size is exactly N^2 pixels
STYLE = EXAMPLES / "starry_night.jpg"
STYLE_WEIGHT = 50.0
CAFFE_MEAN = (103.939, 116.779, 123.68)
OUT_DIR = Path("/tmp/restyle-bench")


# ---------------------------------------------------------------------------------------------
# Workers (run in a child process; print one JSON line)
# ---------------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _config(size: int, device: str, precision: str):
    from restyle import Config

    return Config(size=size, device=device, precision=precision, style_weight=STYLE_WEIGHT, tv_weight=0.0, seed=0,
                  multiscale=False)  # one stage at the size: ms/iteration of that size


class Evaluator:
    """restyle's objective in fp32 (no TF32) on the measured device: one scale for both tools'
    images. (On the CPU, scoring 250 snapshots of a 512² GPU run took 73 s a job on the H200's host.)"""

    def __init__(self, size: int, device: str = "cpu"):
        from restyle import StyleTransfer

        self.st = StyleTransfer(_config(size, device, "fp32"))
        content, styles = self.st.load_inputs(CONTENT, [STYLE])
        self.st.set_targets(content, styles)

    def __call__(self, image_rgb01) -> float:
        import torch

        with torch.no_grad():
            return float(self.st.losses(image_rgb01.float().to(self.st.device))[0])

    def curve(self, snapshots: list) -> list[tuple[float, float]]:
        """[(seconds, image)] -> [(seconds, loss)]."""
        return [(t, self(img)) for t, img in snapshots]


def worker_restyle(size: int, device: str, precision: str, iters: int) -> dict:
    import torch

    from restyle import StyleTransfer

    t0 = time.perf_counter()
    cfg = _config(size, device, precision).replace(iterations=iters)
    # Curves need the time of every row: read the losses every step (on a GPU that is a sync per step).
    st = StyleTransfer(cfg, sync_every=1)
    marks: list[float] = []
    snapshots: list = []  # (seconds into the loop, image after that many steps), scored after the loop

    def on_iteration(row, image):
        _sync(device)
        marks.append(time.perf_counter())
        snapshots.append(image.detach().float().cpu().clone())

    res = st.run(CONTENT, [STYLE], on_iteration=on_iteration)
    steps = [b - a for a, b in zip(marks[1:], marks[2:])]
    ms_per_iter = 1000 * statistics.median(steps)
    if device.startswith("cuda"):
        # The loop as users run it (losses read every SYNC_EVERY_CUDA steps), warmed up by the run above.
        quiet = StyleTransfer(cfg)
        quiet.run(CONTENT, [STYLE])
        ms_per_iter = 1000 * quiet.loop_seconds / iters
    floor = floor_ms(st, size)
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    evaluate = Evaluator(size, device)  # after the peak is read: scoring is not the run's memory
    # Row i (the image after i steps) is reported once step i is done, i.e. when the image after
    # i + 1 steps exists; the loop started one step before the first report.
    origin = marks[0] - statistics.median(steps)
    curve = [(marks[i] - origin, snapshots[i + 1]) for i in range(len(snapshots) - 1)]
    image_path = OUT_DIR / f"restyle_{device}_{size}_{st.precision}_{iters}.png"
    res.image.save(image_path)
    out = {
        "tool": "restyle", "precision": st.precision, "ms_per_iter": ms_per_iter, "image": str(image_path),
        "floor_ms": floor, "setup_s": marks[0] - t0, "loss_n": evaluate(_tensor(res.image)),
        "curve": evaluate.curve(curve),
    }
    if cuda_peak is not None:
        out["cuda_peak_mb"] = cuda_peak
    return out


def floor_ms(st, size: int, repeats: int | None = None) -> float:
    """The bare pass one iteration cannot avoid: the backbone up to the deepest layer used,
    forward and gradient to the image, in the run's precision and memory format (no losses, no
    optimiser). Median of ``repeats`` passes after two warm-up passes."""
    import torch

    device = st.device
    deepest = max(st.layers, key=st.backbone.names.index)
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    repeats = repeats or (20 if device.type == "cuda" else max(3, int(12 * (256 / size) ** 2)))
    times = []
    for i in range(repeats + 2):
        _sync(str(device))
        t = time.perf_counter()
        with st.extractor.autocast():
            feats = st.backbone(st.extractor.prepare(x), [deepest])[deepest]
        feats.backward(torch.ones_like(feats))
        x.grad = None
        _sync(str(device))
        if i >= 2:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _tensor(pil_image):
    from restyle.io.images import to_tensor

    return to_tensor(pil_image)


def worker_pastiche(size: int, device: str, iters: int) -> dict:
    import torch
    from pastiche.pastiche import PasticheArtist
    # pastiche's loss with per-layer weights chosen so it equals restyle's relative losses:
    # content: mse/mean(P^2); style: (w/5) * mse(G_p, A_p)/mean(A_p^2) (pastiche's Gram is C x ours).
    evaluate = Evaluator(size)
    st = evaluate.st
    style_imgs = st.load_inputs(CONTENT, [STYLE])[1]
    cw = [float(1.0 / st.content_losses[n].target.pow(2).mean()) for n in st.content_losses]
    sw = []
    for loss in st.style_losses.values():
        c = loss.target.shape[-1]
        sw.append(STYLE_WEIGHT / len(st.style_losses) / float((loss.target * c).pow(2).mean()))
    relu = lambda n: n.replace("_conv", "_relu")  # noqa: E731  pastiche names the ReLU outputs
    t0 = time.perf_counter()
    artist = PasticheArtist(
        str(CONTENT), [str(STYLE)], device=device, size=size, style_size=max(style_imgs[0].size),
        content_layers=[relu(n) for n in st.content_losses], style_layers=[relu(n) for n in st.style_losses],
        content_layer_weights=cw, style_layer_weights=sw, content_weight=1.0, style_weights=[1.0], tv_weight=0.0,
    )
    setup = time.perf_counter() - t0
    marks = [time.perf_counter()]
    snapshots = []  # (seconds into the loop, image after that many steps)
    for _ in range(iters):
        artist.draw()
        _sync(device)
        marks.append(time.perf_counter())
        snapshots.append((marks[-1] - marks[0], artist.pastiche.detach().clone()))
    steps = [b - a for a, b in zip(marks[1:], marks[2:])]

    def rgb01(x):
        x = x.detach().float().cpu().clone()[0]
        for i, m in enumerate(CAFFE_MEAN):
            x[i] += m
        return (x[[2, 1, 0]] / 255.0).clamp(0, 1)[None]

    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    if device != "cpu":  # score on the device, as restyle's runs are (the CPU evaluator set the weights)
        evaluate = Evaluator(size, device)
    out = {
        "tool": "pastiche", "precision": "fp32", "ms_per_iter": 1000 * statistics.median(steps), "setup_s": setup,
        "loss_n": evaluate(rgb01(artist.pastiche)), "curve": evaluate.curve([(t, rgb01(x)) for t, x in snapshots]),
    }
    if cuda_peak is not None:
        out["cuda_peak_mb"] = cuda_peak
    return out


# ---------------------------------------------------------------------------------------------
# Parent: child processes, peak RSS, start-up, table
# ---------------------------------------------------------------------------------------------
def run_child(args: list[str], timeout: float = 1800) -> tuple[dict, float, float]:
    """Run ``bench.py --worker ...``; return (its JSON, wall seconds, peak RSS MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--worker", *args], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"worker {args} failed")
    return json.loads(out.strip().splitlines()[-1]), wall, usage.ru_maxrss / 1024


def startup_time(tool: str, device: str, size: int, out_dir: Path, iterations: int = 1, repeats: int = 3) -> float:
    """Process start -> ``iterations`` iterations done and the PNG written (the whole command), best of ``repeats``."""
    png = out_dir / f"startup_{tool}.png"
    if tool == "restyle":
        cmd = [str(Path(sys.executable).parent / "restyle"), "run", str(CONTENT), str(STYLE), "-o", str(png),
               "--size", str(size), "-n", str(iterations), "--device", device, "--no-history", "-q"]
    else:
        cmd = [sys.executable, "-m", "pastiche", "-c", str(CONTENT), "-s", str(STYLE), "-o", str(png),
               "--size", str(size), "--num-steps", str(iterations), "--device", device, "--no-verbose"]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--devices", default=None, help="comma-separated; default cpu (+cuda when present)")
    p.add_argument("--iters", default=None, help="iterations per size, e.g. 256:20,512:10,1024:4")
    p.add_argument("--precisions", default="auto,fp32", help="restyle precisions to measure")
    p.add_argument("--no-pastiche", action="store_true")
    p.add_argument("--end-to-end", default=None,
                   help="SIZE:N[,SIZE:N]: time whole commands (process start -> N iterations -> PNG); "
                        "default 512:500 on CUDA, none on CPU")
    p.add_argument("--markdown", help="write the table (with machine, versions, date) to this file")
    a = p.parse_args()
    OUT_DIR.mkdir(exist_ok=True)
    if a.worker:
        tool, size, device, *rest = a.worker
        if tool == "restyle":
            res = worker_restyle(int(size), device, rest[0], int(rest[1]))
        else:
            res = worker_pastiche(int(size), device, int(rest[0]))
        print(json.dumps(res))
        return

    import torch

    devices = a.devices.split(",") if a.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sizes = [int(s) for s in a.sizes.split(",")]
    iters = {256: 20, 512: 10, 1024: 5, 2048: 4}
    iters.update({int(k): int(v) for k, v in (x.split(":") for x in a.iters.split(","))} if a.iters else {})
    rows = []
    startups = {}
    for device in devices:
        gpu = device.startswith("cuda")
        tools = ["restyle"] + ([] if a.no_pastiche else ["pastiche"])
        for tool in tools:
            startups[(tool, device, 256, 1)] = startup_time(tool, device, 256, OUT_DIR)
            print(f"start-up {tool} {device}: {startups[(tool, device, 256, 1)]:.2f} s", file=sys.stderr)
        e2e = a.end_to_end if a.end_to_end is not None else ("512:500" if gpu else "")
        for spec in filter(None, e2e.split(",")):
            size, n = (int(v) for v in spec.split(":"))
            for tool in tools:
                startups[(tool, device, size, n)] = startup_time(tool, device, size, OUT_DIR, n, repeats=1 if n > 1 else 3)
                print(f"end-to-end {tool} {device} {size}² x {n}: {startups[(tool, device, size, n)]:.2f} s", file=sys.stderr)
        for size in sizes:
            n = iters.get(size, 5) * (25 if gpu else 1)
            jobs = [("restyle", prec) for prec in a.precisions.split(",")]
            if not a.no_pastiche:
                jobs.append(("pastiche", "fp32"))
            for tool, prec in jobs:
                if tool == "restyle":
                    res, wall, rss = run_child(["restyle", str(size), device, prec, str(n)])
                else:
                    res, wall, rss = run_child(["pastiche", str(size), device, str(n)])
                res.update(device=device, size=size, iters=n, wall_s=wall, peak_rss_mb=rss)
                rows.append(res)
                print(json.dumps({k: v for k, v in res.items() if k != "curve"}), file=sys.stderr)
    table = render(rows, startups)
    print(table)
    if a.markdown:
        header = (
            f"Measured {date.today().isoformat()} on {platform.node() or 'this machine'}: "
            f"{_cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}"
            + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "") + ".\n\n"
            f"Command: `python bench/bench.py {' '.join(sys.argv[1:])}`\n\n"
        )
        Path(a.markdown).write_text(header + table + "\n")


def _time_to(curve: list, target: float) -> float | None:
    """Seconds into the loop at which the loss first reached ``target`` (None: never)."""
    return next((t for t, loss in curve if loss <= target), None)


def _loss_at(curve: list, seconds: float) -> float:
    """The loss known ``seconds`` into the loop (the last one recorded by then)."""
    known = [loss for t, loss in curve if t <= seconds]
    return known[-1] if known else curve[0][1]


def render(rows: list[dict], startups: dict) -> str:
    """One row per run. Time-to-loss: seconds to reach pastiche's loss after N iterations;
    loss after T: each tool's loss at T = half of pastiche's loop time."""
    base = {(r["device"], r["size"]): r for r in rows if r["tool"] == "pastiche"}
    lines = [
        "| device | size | tool | precision | N | ms/iter | speed-up/iter | floor ms | loop/floor | loss after N (fp32 eval) "
        "| time to pastiche's final loss | speed-up | loss after T | T | peak RSS MiB | CUDA peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get((r["device"], r["size"]))
        speed = ttl = ttl_speed = loss_t = t = "-"
        if b:
            speed = f"{b['ms_per_iter'] / r['ms_per_iter']:.2f}x"
            target = b["curve"][-1][1]
            mine, theirs = _time_to(r["curve"], target), _time_to(b["curve"], target)
            ttl = f"{mine:.2f} s" if mine is not None else "not reached"
            ttl_speed = f"{theirs / mine:.2f}x" if mine and theirs else "-"
            t_half = b["curve"][-1][0] / 2
            loss_t, t = f"{_loss_at(r['curve'], t_half):.4g}", f"{t_half:.1f} s"
        cuda = f"{r['cuda_peak_mb']:.0f}" if "cuda_peak_mb" in r else "-"
        floor = f"{r['floor_ms']:.1f}" if "floor_ms" in r else "-"
        ratio = f"{r['ms_per_iter'] / r['floor_ms']:.2f}" if "floor_ms" in r else "-"
        lines.append(
            f"| {r['device']} | {r['size']}² | {r['tool']} | {r['precision']} | {r['iters']} | {r['ms_per_iter']:.0f} | "
            f"{speed} | {floor} | {ratio} | {r['loss_n']:.4g} | {ttl} | {ttl_speed} | {loss_t} | {t} | {r['peak_rss_mb']:.0f} | {cuda} |")
    pairs = [(r, f) for r in rows for f in rows if r["tool"] == f["tool"] == "restyle" and f["precision"] == "fp32"
             and r["precision"] != "fp32" and (r["device"], r["size"], r["iters"]) == (f["device"], f["size"], f["iters"])]
    if pairs:
        lines += ["", "| device | size | N | precision | its output vs fp32's: SSIM (luma) | mean abs diff (of 255) "
                      "| loss after N, this / fp32 |", "|---|---|---|---|---|---|---|"]
        for r, f in pairs:
            ssim, mad = compare_images(r["image"], f["image"])
            lines.append(f"| {r['device']} | {r['size']}² | {r['iters']} | {r['precision']} | {ssim:.4f} | {mad:.2f} | "
                         f"{r['loss_n'] / f['loss_n']:.3f} |")
    lines += ["", "| tool | device | size | iterations | process start → iterations done + PNG written |",
              "|---|---|---|---|---|"]
    for (tool, device, size, n), s in startups.items():
        how = " (best of 3)" if n == 1 else ""
        lines.append(f"| {tool} | {device} | {size}² | {n} | {s:.2f} s{how} |")
    return "\n".join(lines)


def compare_images(path_a: str, path_b: str) -> tuple[float, float]:
    """(SSIM of the luma at full resolution, mean absolute difference in 8-bit levels)."""
    import numpy as np

    from restyle.io import images
    from restyle.metrics import luminance, ssim_tensors

    a, b = (images.load_image(p) for p in (path_a, path_b))
    mad = float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())
    return ssim_tensors(luminance(images.to_tensor(a)), luminance(images.to_tensor(b))), mad


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
