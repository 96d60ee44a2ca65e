"""Time to quality: the evaluator's content and style distance along a run, against wall seconds.

    python bench/ttq.py run --sizes 256 --configs today -o bench/out/ttq          # one run per cell
    python bench/ttq.py run --sizes 256 --configs auto --src src -o bench/out/ttq
    python bench/ttq.py report -o bench/out/ttq                                   # summary.md, curves, sheets

A run keeps a snapshot of its image every ``--every`` history rows (and its last) with the row's
wall seconds; the snapshots are scored by the fixed evaluator *after* the run, so scoring costs
the run nothing. A cell is (photo, painting, size, config); cells already in ``results.jsonl`` are
skipped, so a panel runs in parts and resumes.

"Finished" is defined per cell from the ``--base`` run (``today``: ``-n 300`` on today's schedule):
both distances within ``--within`` (5%) of where it ends. Seconds-to-finished of a run is the wall
time of its first snapshot that is finished *and stays so* for the rest of the run. ``ref`` is a
longer run (``--ref-iterations`` first-stage steps) for checking where today's ends.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load(src: str) -> None:
    sys.path.insert(0, str(Path(src).resolve()))


PANEL = ROOT / "bench" / "panel"
EXAMPLES = ROOT / "src" / "restyle" / "examples"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble", "rocket-night", "chelsea-haze")
PAINTINGS = ("starry_night", "the_scream", "woman-with-hat-matisse")
#: Config overrides by name; "iterations": None means the automatic stop (the new default).
CONFIGS: dict[str, dict[str, Any]] = {
    "today": {"iterations": 300},
    "ref": {},  # iterations from --ref-iterations
    "auto": {},  # the defaults of the code under --src
}


def max_rise(history: list[dict[str, float]]) -> float:
    rise = 1.0
    for s in sorted({int(r["scale"]) for r in history}):
        best = math.inf
        for r in history:
            if int(r["scale"]) != s:
                continue
            v = r["total"]
            if not math.isfinite(v):
                return math.inf
            best = min(best, v)
            rise = max(rise, v / best) if best > 0 else rise
    return rise


def universal_start(content: Path, style: Path, size: int, start: str) -> tuple[Any, float]:
    """The universal method's picture (``start``: ``universal`` or ``universal:STRENGTH``) as the
    optimiser's start, with the photo's fine detail restored by the guided filter, and its seconds."""
    import restyle
    from restyle.io.images import to_tensor

    _, _, strength = start.partition(":")
    t0 = time.perf_counter()
    result = restyle.stylize(content, [style], size=size, method="universal", photo_filter=True,
                             strength=float(strength) if strength else None)
    return to_tensor(result.image), time.perf_counter() - t0


def run_cell(photo: str, painting: str, size: int, overrides: dict[str, Any], every: int, out_png: Path,
             evaluator: Any, save_at: int | None = None, photo_dir: Path = PANEL, start: str = "") -> dict[str, Any]:
    from restyle.config import Config
    from restyle.engine.transfer import StyleTransfer

    content, style = photo_dir / f"{photo}.jpg", EXAMPLES / f"{painting}.jpg"
    snaps: list[tuple[int, float, Any]] = []
    config = Config(size=size, device="cpu", seed=0, **overrides)
    st = StyleTransfer(config)
    init, offset = universal_start(content, style, size, start) if start else (None, 0.0)

    def keep(row: dict[str, float], image: Any) -> None:
        i = int(row["iteration"])
        cpu[i] = time.process_time() - cpu0
        if i % every == 0:
            snaps.append((i, row["seconds"] + offset, image.detach().float().cpu().clone()))
            if i == save_at:
                to_image(snaps[-1][2]).save(out_png.with_suffix(f".at{i}.png"))
        else:
            last[:] = [(i, row["seconds"] + offset, image)]

    from restyle.io.images import to_image

    last: list[tuple[int, float, Any]] = []
    cpu: dict[int, float] = {}
    cpu0 = time.process_time()
    start_t = time.perf_counter()
    result = st.run(str(content), [str(style)], on_iteration=keep, init_image=init)
    seconds = time.perf_counter() - start_t + offset
    cpu_seconds = time.process_time() - cpu0
    if last and (not snaps or snaps[-1][0] != last[0][0]):
        i, s, image = last[0]
        snaps.append((i, s, image.detach().float().cpu().clone()))
    result.image.save(out_png)
    curve = []
    for i, s, image in snaps:
        sc = evaluator.score(to_image(image), str(content), str(style))
        curve.append({"iteration": i, "seconds": s, "cpu": cpu.get(i, math.nan), "scale": int(image.shape[-1] if image.shape[-1] >= image.shape[-2]
                                                                  else image.shape[-2]),
                      "content": sc.content_distance, "style": sc.style_distance})
    final = evaluator.score(out_png, str(content), str(style))
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "steps": len(result.history) - 1, "final_loss": result.final_loss,
            "max_rise": max_rise(result.history), "stopped": result.stopped_early,
            "stages": sorted({int(r["scale"]) for r in result.history}),
            "content_distance": final.content_distance, "style_distance": final.style_distance,
            "ssim": final.ssim, "curve": curve, "losses": [r["total"] for r in result.history],
            "scales": [int(r["scale"]) for r in result.history], "row_seconds": [r["seconds"] for r in result.history],
            "stop_reason": getattr(result, "stop_reason", None)}


def results(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cmd_run(args: argparse.Namespace) -> None:
    load(args.src)
    import torch

    from restyle.metrics import Evaluator

    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    done = {r["cell"] for r in results(out_dir)}
    evaluator = Evaluator(args.eval_size) if args.eval_size else Evaluator()
    photos = PHOTOS if args.photos == "all" else tuple(args.photos.split(","))
    paintings = PAINTINGS if args.paintings == "all" else tuple(args.paintings.split(","))
    for size in [int(s) for s in args.sizes.split(",")]:
        for config in args.configs.split(","):
            overrides = dict(CONFIGS.get(config, {}))
            if config == "ref":
                overrides["iterations"] = args.ref_iterations
            for extra in args.set or []:
                key, _, value = extra.partition("=")
                overrides[key] = json.loads(value)
            label = args.label or config
            for photo in photos:
                for painting in paintings:
                    name = f"{label}__{size}__{photo}__{painting}"
                    if name in done:
                        continue
                    rec = run_cell(photo, painting, size, overrides, args.every, out_dir / "cells" / f"{name}.png",
                                   evaluator, args.save_at, Path(args.photo_dir), args.start)
                    rec.update(cell=name, config=label, size=size, photo=photo, painting=painting,
                               overrides=overrides, src=args.src, photo_dir=str(args.photo_dir), start=args.start,
                               eval_size=evaluator.size)
                    with open(out_dir / "results.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(f"{name}: {rec['seconds']:.1f}s {rec['steps']} steps content {rec['content_distance']:.3f} "
                          f"style {rec['style_distance']:.4f} rise {rec['max_rise']:.2f} {rec['stop_reason']}",
                          flush=True)


def finished_at(curve: list[dict[str, float]], end: dict[str, float], within: float, key: str = "seconds") -> float | None:
    """``key`` (seconds, cpu) of the first snapshot from which every later one is within ``within`` of
    ``end`` in both distances (a distance below it counts as within)."""
    ok = [c["content"] <= end["content"] * (1 + within) and c["style"] <= end["style"] * (1 + within) for c in curve]
    for k in range(len(curve)):
        if all(ok[k:]):
            return curve[k][key]
    return None


def cmd_report(args: argparse.Namespace) -> None:
    """summary.md (today against the others, per size), curves.png, sheet-SIZE.jpg."""
    load(str(ROOT / "src"))
    out_dir = Path(args.out)
    rs = results(out_dir)
    by = {(r["config"], r["size"], r["photo"], r["painting"]): r for r in rs}
    configs = sorted({c for (c, *_rest) in by if c != args.base})
    lines = [f"Finished: both evaluator distances within {args.within:.0%} of where `{args.base}` ends, and staying "
             "there. Ratios are per cell, then the median.", "",
             f"| size | config | cells | median s ({args.base} → config) | s / {args.base} (median, worst) | "
             f"CPU s / {args.base} | steps (median) | s to finished (median: {args.base} → config) | "
             f"content vs {args.base} (median, worst) | style vs {args.base} (median, worst) | max rise | "
             f"fine detail vs {args.base} (median, lowest) |",
             "|" + "---|" * 12]
    for size in sorted({s for (_, s, _, _) in by}):
        for config in configs:
            pairs = [(by[(args.base, s, p, q)], r) for (c, s, p, q), r in by.items()
                     if c == config and s == size and (args.base, s, p, q) in by]
            if not pairs:
                continue
            t = [b["seconds"] for b, _ in pairs]
            n = [r["seconds"] for _, r in pairs]
            ratio = [r["seconds"] / b["seconds"] for b, r in pairs]
            cpu = [r["cpu_seconds"] / b["cpu_seconds"] for b, r in pairs]
            rc = [r["content_distance"] / b["content_distance"] - 1 for b, r in pairs]
            rst = [r["style_distance"] / b["style_distance"] - 1 for b, r in pairs]
            fb = [finished_at(b["curve"], b["curve"][-1], args.within) for b, _ in pairs]
            fn = [finished_at(r["curve"], b["curve"][-1], args.within) for b, r in pairs]
            med = statistics.median
            cells = [(out_dir / "cells" / f"{b['cell']}.png", out_dir / "cells" / f"{r['cell']}.png") for b, r in pairs]
            fd = [fine_detail(y) / fine_detail(x) - 1 for x, y in cells if x.exists() and y.exists()]

            lines.append(f"| {size} | {config} | {len(pairs)} | {med(t):.1f} → {med(n):.1f} | {med(ratio):.2f}, "
                         f"{max(ratio):.2f} | {med(cpu):.2f} | {med([r['steps'] for _, r in pairs]):.0f} | "
                         f"{fin(fb)} → {fin(fn)} | {med(rc):+.1%}, {max(rc):+.1%} | {med(rst):+.1%}, "
                         f"{max(rst):+.1%} | {max(r['max_rise'] for _, r in pairs):.2f} | "
                         + (f"{med(fd):+.1%}, {min(fd):+.1%} |" if fd else "– |"))
    lines += full_size_table(by, args.base, configs, out_dir)
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    curves(by, args.base, configs, out_dir)
    for size in sorted({s for (_, s, _, _) in by}):
        sheet(by, args.base, configs, size, out_dir)


def full_size_table(by: dict[Any, dict[str, Any]], base: str, configs: list[str], out_dir: Path) -> list[str]:
    """Outputs over 256 px scored again by the evaluator at their own size (it scores at 256 px by
    default, where a finer stage's detail is lost); the scores are kept in ``full_scores.json``."""
    from restyle.metrics import Evaluator

    cache_path = out_dir / "full_scores.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    evaluators: dict[int, Any] = {}
    for (_, size, photo, painting), r in by.items():
        if size <= 256 or r["cell"] in cache:
            continue
        ev = evaluators.setdefault(size, Evaluator(size=size))
        sc = ev.score(out_dir / "cells" / f"{r['cell']}.png", Path(r.get("photo_dir", PANEL)) / f"{photo}.jpg",
                      EXAMPLES / f"{painting}.jpg")
        cache[r["cell"]] = {"content": sc.content_distance, "style": sc.style_distance}
    cache_path.write_text(json.dumps(cache, indent=1))
    lines = ["", f"Scored at the output's own size (content and style distance against `{base}`):", "",
             "| size | config | cells | content (median, worst) | style (median, worst) |", "|---|---|---|---|---|"]
    for size in sorted({s for (_, s, _, _) in by if s > 256}):
        for config in configs:
            pairs = [(cache[by[(base, s, p, q)]["cell"]], cache[r["cell"]]) for (c, s, p, q), r in by.items()
                     if c == config and s == size and (base, s, p, q) in by]
            if pairs:
                rc = [r["content"] / b["content"] - 1 for b, r in pairs]
                rs = [r["style"] / b["style"] - 1 for b, r in pairs]
                lines.append(f"| {size} | {config} | {len(pairs)} | {statistics.median(rc):+.1%}, {max(rc):+.1%} | "
                             f"{statistics.median(rs):+.1%}, {max(rs):+.1%} |")
    return lines


def fine_detail(path: Path) -> float:
    """The RMS of an output's luma less itself blurred (Gaussian, radius 1 px), in [0, 1]: the energy
    of its finest strokes. A picture that looks softer than another has less of it, where the
    evaluator's distances need not differ (docs/stopping.md, "The look in one number")."""
    import numpy as np
    from PIL import Image, ImageFilter

    with Image.open(path) as img:
        luma = img.convert("L")
        sharp = np.asarray(luma, dtype=np.float32)
        blurred = np.asarray(luma.filter(ImageFilter.GaussianBlur(1)), dtype=np.float32)
    return float(np.sqrt(((sharp - blurred) ** 2).mean()) / 255)


def fin(values: list[float | None]) -> str:
    """The median of the values that are not None, and how many there are."""
    done = [v for v in values if v is not None]
    return f"{statistics.median(done):.1f} ({len(done)}/{len(values)})" if done else f"– (0/{len(values)})"


def curves(by: dict[Any, dict[str, Any]], base: str, configs: list[str], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted({(s, p, q) for (c, s, p, q) in by if c == base and any((k, s, p, q) in by for k in configs)})[:6]
    if not cells:
        return
    fig, axes = plt.subplots(2, len(cells), figsize=(3.2 * len(cells), 5.5), squeeze=False)
    for j, (s, p, q) in enumerate(cells):
        for config, colour in [(base, "tab:grey"), *zip(configs, ("tab:red", "tab:blue", "tab:green"))]:
            r = by.get((config, s, p, q))
            if r is None:
                continue
            xs = [c["seconds"] for c in r["curve"][1:]]
            axes[0][j].plot(xs, [c["content"] for c in r["curve"][1:]], color=colour, label=config)
            axes[1][j].plot(xs, [c["style"] for c in r["curve"][1:]], color=colour, label=config)
        axes[0][j].set_title(f"{p} × {q[:12]}, {s} px", fontsize=8)
        axes[1][j].set_yscale("log")
        axes[1][j].set_xlabel("wall seconds")
    axes[0][0].set_ylabel("content distance")
    axes[1][0].set_ylabel("style distance")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=80)


def sheet(by: dict[Any, dict[str, Any]], base: str, configs: list[str], size: int, out_dir: Path,
          px: int = 128) -> None:
    from PIL import Image, ImageDraw

    cells = sorted({(p, q) for (c, s, p, q) in by if c == base and s == size})
    cols = [base, *configs]
    if not cells:
        return
    img = Image.new("RGB", (px * len(cols) * 2 + 8, 16 + px * ((len(cells) + 1) // 2)), "white")
    draw = ImageDraw.Draw(img)
    for k, (p, q) in enumerate(cells):
        x0, y0 = (k % 2) * (px * len(cols) + 8), 16 + (k // 2) * px
        for i, config in enumerate(cols):
            path = out_dir / "cells" / f"{config}__{size}__{p}__{q}.png"
            if path.exists():
                with Image.open(path) as opened:
                    tile = opened.convert("RGB")
                tile.thumbnail((px, px))
                img.paste(tile, (x0 + i * px, y0))
    for half in range(2):
        for i, config in enumerate(cols):
            draw.text((half * (px * len(cols) + 8) + i * px + 4, 2), config, fill="black")
    img.save(out_dir / f"sheet-{size}.jpg", quality=88)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sizes", default="256")
    r.add_argument("--configs", default="today")
    r.add_argument("--label", default=None, help="name the cells' config (default: the config's name)")
    r.add_argument("--set", action="append", help="a Config override KEY=JSON (repeatable)")
    r.add_argument("--photos", default="all")
    r.add_argument("--photo-dir", default=str(PANEL), help="where the photos are (NAME.jpg)")
    r.add_argument("--paintings", default="all")
    r.add_argument("--ref-iterations", type=int, default=600)
    r.add_argument("--every", type=int, default=10)
    r.add_argument("--save-at", type=int, default=None, help="also keep the image of this iteration")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--start", default="", help="universal[:STRENGTH]: start the optimiser from the universal "
                   "method's picture (its seconds counted)")
    r.add_argument("--eval-size", type=int, default=None, help="the evaluator's size (default 256; the "
                   "output's own size sees what a 512 px stage adds)")
    r.add_argument("--src", default=str(ROOT / "src"))
    r.add_argument("-o", "--out", default=str(ROOT / "bench" / "out" / "ttq"))
    r.set_defaults(func=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("-o", "--out", default=str(ROOT / "bench" / "out" / "ttq"))
    p.add_argument("--within", type=float, default=0.05)
    p.add_argument("--base", default="today", help="the configuration the others are compared with")
    p.set_defaults(func=cmd_report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
