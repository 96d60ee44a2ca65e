"""Time to quality: the evaluator's content and style distance along a run, against wall seconds.

    python bench/ttq.py run --sizes 256 --configs today -o bench/out/ttq          # one run per cell
    python bench/ttq.py run --sizes 256 --configs auto --src src -o bench/out/ttq
    python bench/ttq.py report -o bench/out/ttq                                   # summary.md, curves, sheets

A run keeps a snapshot of its image every ``--every`` history rows (and its last) with the row's
wall seconds; the snapshots are scored by the fixed evaluator *after* the run, so scoring costs
the run nothing. A cell is (photo, painting, size, config); cells already in ``results.jsonl`` are
skipped, so a panel runs in parts and resumes.

"Finished" is defined per cell from its reference run (config ``ref``: today's schedule with
``--ref-iterations`` first-stage steps): both distances within ``--within`` (5%) of where the
reference ends. Seconds-to-finished of a run is the wall time of its first snapshot that is
finished *and stays so* for the rest of the run. ``today`` is the reference's first 300 steps at
sizes where the schedule is one stage (its own trajectory, cut), else its own run.
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


def run_cell(photo: str, painting: str, size: int, overrides: dict[str, Any], every: int, out_png: Path,
             evaluator: Any, save_at: int | None = None) -> dict[str, Any]:
    from restyle.config import Config
    from restyle.engine.transfer import StyleTransfer

    content, style = PANEL / f"{photo}.jpg", EXAMPLES / f"{painting}.jpg"
    snaps: list[tuple[int, float, Any]] = []
    config = Config(size=size, device="cpu", seed=0, **overrides)
    st = StyleTransfer(config)

    def keep(row: dict[str, float], image: Any) -> None:
        i = int(row["iteration"])
        cpu[i] = time.process_time() - cpu0
        if i % every == 0:
            snaps.append((i, row["seconds"], image.detach().float().cpu().clone()))
            if i == save_at:
                to_image(snaps[-1][2]).save(out_png.with_suffix(f".at{i}.png"))
        else:
            last[:] = [(i, row["seconds"], image)]

    from restyle.io.images import to_image

    last: list[tuple[int, float, Any]] = []
    cpu: dict[int, float] = {}
    cpu0 = time.process_time()
    start = time.perf_counter()
    result = st.run(str(content), [str(style)], on_iteration=keep)
    seconds = time.perf_counter() - start
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
    evaluator = Evaluator()
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
                                   evaluator, args.save_at)
                    rec.update(cell=name, config=label, size=size, photo=photo, painting=painting,
                               overrides=overrides, src=args.src)
                    with open(out_dir / "results.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(f"{name}: {rec['seconds']:.1f}s {rec['steps']} steps content {rec['content_distance']:.3f} "
                          f"style {rec['style_distance']:.4f} rise {rec['max_rise']:.2f} {rec['stop_reason']}",
                          flush=True)


def finished_at(curve: list[dict[str, float]], ref_end: dict[str, float], within: float) -> float | None:
    """Seconds of the first snapshot from which every later one is within ``within`` of the
    reference's end in both distances (a distance below the reference's counts as within)."""
    ok = [c["content"] <= ref_end["content"] * (1 + within) and c["style"] <= ref_end["style"] * (1 + within)
          for c in curve]
    for k in range(len(curve)):
        if all(ok[k:]):
            return curve[k]["seconds"]
    return None


def cut(rec: dict[str, Any], steps: int) -> dict[str, Any]:
    """A reference run read as the same schedule stopped after ``steps`` (one-stage schedules only)."""
    curve = [c for c in rec["curve"] if c["iteration"] <= steps]
    return {**rec, "curve": curve, "seconds": curve[-1]["seconds"], "content_distance": curve[-1]["content"],
            "style_distance": curve[-1]["style"], "steps": curve[-1]["iteration"]}


def cmd_report(args: argparse.Namespace) -> None:
    out_dir = Path(args.out)
    rs = results(out_dir)
    by = {(r["config"], r["size"], r["photo"], r["painting"]): r for r in rs}
    refs = {(s, p, q): r for (c, s, p, q), r in by.items() if c == "ref"}
    lines = [f"Finished = both evaluator distances within {args.within:.0%} of the reference's end "
             f"(reference: today's schedule with {args.ref_label}).", ""]
    configs = sorted({c for (c, *_rest) in by if c != "ref"})
    table = ["| size | config | cells | median s | s / today | median s to finished | finished cells | "
             "content vs today (median, worst) | style vs today (median, worst) | max rise |", "|" + "---|" * 10]
    for size in sorted({s for (_, s, _, _) in by}):
        for config in configs:
            cells = [(k, r) for k, r in by.items() if k[0] == config and k[1] == size]
            if not cells:
                continue
            secs, fin, rel_c, rel_s, ratio = [], [], [], [], []
            for (_c, s, p, q), r in cells:
                ref = refs.get((s, p, q))
                today = by.get(("today", s, p, q))
                if ref is None:
                    continue
                end = ref["curve"][-1]
                secs.append(r["seconds"])
                f = finished_at(r["curve"], end, args.within)
                fin.append(f)
                if today is not None:
                    rel_c.append(r["content_distance"] / today["content_distance"] - 1)
                    rel_s.append(r["style_distance"] / today["style_distance"] - 1)
                    ratio.append(r["seconds"] / today["seconds"])
            if not secs:
                continue
            done = [f for f in fin if f is not None]
            table.append(
                f"| {size} | {config} | {len(secs)} | {statistics.median(secs):.1f} | "
                f"{statistics.median(ratio):.2f} | " if ratio else f"| {size} | {config} | {len(secs)} | "
                f"{statistics.median(secs):.1f} | – | ")
            table[-1] += (f"{statistics.median(done):.1f} | " if done else "– | ") + f"{len(done)}/{len(fin)} | "
            table[-1] += (f"{statistics.median(rel_c):+.1%}, {max(rel_c):+.1%} | {statistics.median(rel_s):+.1%}, "
                          f"{max(rel_s):+.1%} | " if rel_c else "– | – | ")
            table[-1] += f"{max(r['max_rise'] for _, r in cells):.2f} |"
    (out_dir / "summary.md").write_text("\n".join(lines + table) + "\n")
    print("\n".join(lines + table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sizes", default="256")
    r.add_argument("--configs", default="today")
    r.add_argument("--label", default=None, help="name the cells' config (default: the config's name)")
    r.add_argument("--set", action="append", help="a Config override KEY=JSON (repeatable)")
    r.add_argument("--photos", default="all")
    r.add_argument("--paintings", default="all")
    r.add_argument("--ref-iterations", type=int, default=600)
    r.add_argument("--every", type=int, default=10)
    r.add_argument("--save-at", type=int, default=None, help="also keep the image of this iteration")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--src", default=str(ROOT / "src"))
    r.add_argument("-o", "--out", default=str(ROOT / "bench" / "out" / "ttq"))
    r.set_defaults(func=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("-o", "--out", default=str(ROOT / "bench" / "out" / "ttq"))
    p.add_argument("--within", type=float, default=0.05)
    p.add_argument("--ref-label", default="600 first-stage steps")
    p.set_defaults(func=cmd_report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
