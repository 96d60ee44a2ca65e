"""A study's report: the contact sheet (PNG), loss curves, metrics.csv and index.html.

index.html opens offline: inline CSS, no scripts, every image by a path relative to the study
directory.
"""

from __future__ import annotations

import csv
import html
import io
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from restyle.io import images
from restyle.io.files import atomic_write_text, save_png
from restyle.study.grid import EXAMPLE_KINDS, PARAM_COLUMNS, CellResult, format_value

BACKGROUND = (255, 255, 255)
PANEL = (236, 236, 236)
INK = (20, 20, 20)
MUTED = (90, 90, 90)


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (its bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def wrap(draw: ImageDraw.ImageDraw, text: str, fnt: Any, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` (at spaces; long words kept whole)."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=fnt) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def _fit(img: Image.Image, box: int) -> Image.Image:
    w, h = img.size
    scale = box / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def _grid(results: Sequence[CellResult]):
    groups: dict[str, list[Any]] = {}
    variants: list[str] = []
    for r in results:
        groups.setdefault(r.cell.group, []).append(r)
        if r.cell.variant not in variants:
            variants.append(r.cell.variant)
    return groups, variants


def contact_sheet(results: Sequence[CellResult], path: str | Path, *, thumb: int = 160, title: str = "") -> Path:
    """One row per content × style: a row label, the content, the style, then one result per
    layer set / swept value, each captioned with its metrics; column headers on top."""

    groups, variants = _grid(results)
    pad, label_w = 10, 150
    f_title, f_head, f_cap = font(18), font(14), font(12)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = {id(f): (f.getbbox("Ag")[3] - f.getbbox("Ag")[1]) + 4 for f in (f_title, f_head, f_cap)}
    columns = ["content (original)", "style", *variants]
    col_w = thumb + pad
    head_lines = [wrap(scratch, c, f_head, thumb) for c in columns]
    head_h = max(len(h) for h in head_lines) * line_h[id(f_head)] + pad
    title_lines = wrap(scratch, title, f_title, label_w + col_w * len(columns) - 2 * pad) if title else []
    title_h = len(title_lines) * line_h[id(f_title)] + (pad if title else 0)
    cap_h = 2 * line_h[id(f_cap)] + 4
    row_h = thumb + cap_h + pad
    width = pad + label_w + col_w * len(columns)
    height = pad + title_h + head_h + row_h * len(groups)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    y = pad
    for line in title_lines:
        draw.text((pad, y), line, fill=INK, font=f_title)
        y += line_h[id(f_title)]
    y += pad if title else 0
    for j, lines in enumerate(head_lines):
        x = pad + label_w + j * col_w
        for k, line in enumerate(lines):
            draw.text((x, y + k * line_h[id(f_head)]), line, fill=INK, font=f_head)
    y += head_h

    def put(img: Image.Image | None, x: int, y0: int, caption: Sequence[str], missing: str = "") -> None:
        draw.rectangle([x, y0, x + thumb - 1, y0 + thumb - 1], fill=PANEL)
        if img is not None:
            t = _fit(img, thumb)
            sheet.paste(t, (x + (thumb - t.width) // 2, y0 + (thumb - t.height) // 2))
        elif missing:
            draw.text((x + 8, y0 + thumb // 2 - 8), missing, fill=MUTED, font=f_head)
        for k, line in enumerate(caption[:2]):
            draw.text((x, y0 + thumb + 2 + k * line_h[id(f_cap)]), line, fill=MUTED, font=f_cap)

    for group, rs in groups.items():
        first = rs[0].cell
        kind = EXAMPLE_KINDS.get(Path(first.style).stem, "")
        # (The default font has no "×".)
        label = f"{first.content_label}\nstyled as {first.style_label}" + (f"\n({kind})" if kind else "")
        for k, line in enumerate(wrap(draw, label, f_head, label_w - pad)):
            draw.text((pad, y + k * line_h[id(f_head)]), line, fill=INK, font=f_head)
        x = pad + label_w
        put(_load(first.content, thumb), x, y, [first.content_label])
        put(_load(first.style, thumb), x + col_w, y, [first.style_label + (f" ({kind})" if kind else "")])
        by_variant = {r.cell.variant: r for r in rs}
        for j, v in enumerate(variants):
            r = by_variant.get(v)
            xx = x + (j + 2) * col_w
            if r is None:
                continue
            if r.status == "failed" or r.png is None:
                put(None, xx, y, ["failed"], missing="failed")
                continue
            m = r.metrics
            put(_load(r.png, None), xx, y,
                [f"style {m['style_distance']:.3g}  content {m['content_distance']:.3g}",
                 f"SSIM {m['ssim']:.2f}  {_secs(r.final.get('seconds', 0))}"])
        y += row_h
    buf_path = Path(path)
    save_png(sheet, buf_path)
    return buf_path


def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def _load(source: Any, size: int | None) -> Image.Image | None:
    try:
        img = images.load_image(source, max_pixels=None)
    except Exception:  # noqa: BLE001 - a sheet with a blank panel beats no report
        return None
    return images.resize_longest(img, size) if size else img


def write_curves(results: Sequence[CellResult], out_dir: Path) -> list[tuple[str, Path]]:
    """Loss curves overlaid per content × style group: ``curves/<group>.png``."""
    from restyle.io.history import plot_history

    groups, _ = _grid(results)
    written = []
    for group, rs in groups.items():
        hist = {r.cell.variant: r.history for r in rs if r.history}
        if not hist:
            continue
        c = rs[0].cell
        path = plot_history(hist, out_dir / "curves" / f"{group}.png", title=f"{c.content_label} × {c.style_label}")
        written.append((f"{c.content_label} × {c.style_label}", path))
    return written


def write_report(out_dir: Path, results: Sequence[CellResult], *, notes: Sequence[str], title: str,
                 command: str = "", seconds: float = 0.0) -> dict[str, Any]:
    """Write contact_sheet.png, metrics.csv, curves/*.png and index.html into ``out_dir``."""

    out_dir = Path(out_dir)
    (out_dir / "curves").mkdir(exist_ok=True)
    c0 = results[0].cell.config if results else None
    subtitle = ""
    if c0 is not None:
        asked = sorted({r.cell.config.model for r in results})
        used = sorted({r.model_used for r in results if r.status != "failed" and r.model_used})
        model = " / ".join(asked)
        if used and used != asked:
            model += f" (ran on {' / '.join(used)}: weights unavailable)" if asked == ["vgg16"] else f" (ran on {' / '.join(used)})"
        subtitle = (f"{title}: {len(results)} cells; size {c0.size} px, {c0.iterations} iterations "
                    f"({c0.optimizer}), model {model}")
    files: dict[str, Any] = {}
    files["sheet"] = contact_sheet(results, out_dir / "contact_sheet.png", title=subtitle)
    files["csv"] = write_metrics_csv(results, out_dir)
    files["curves"] = write_curves(results, out_dir)
    files["html"] = atomic_write_text(
        out_dir / "index.html", render_html(out_dir, results, files, notes=notes, title=title, subtitle=subtitle,
                                            command=command, seconds=seconds))
    return files


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #1a1a1a; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 16px 0 4px; }
.muted { color: #666; } code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
.notes li { margin: 4px 0; } .sheet img, .curve img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; vertical-align: middle; }
th { background: #f5f5f5; position: sticky; top: 0; } td.l, th.l { text-align: left; }
td img { width: 64px; display: block; } td.best { font-weight: 700; background: #eaf6ea; }
tr.failed td { background: #fbeaea; } tr.g0 td.gl { background: #fafafa; }
dl.legend dt { font-weight: 600; } dl.legend dd { margin: 0 0 6px 16px; }
"""


def _rel(path: Path, out_dir: Path) -> str:
    return quote(Path(path).resolve().relative_to(Path(out_dir).resolve()).as_posix())


def render_html(out_dir: Path, results: Sequence[CellResult], files: dict[str, Any], *, notes: Sequence[str],
                title: str, subtitle: str, command: str, seconds: float) -> str:
    from restyle.metrics import METRICS

    e = html.escape
    columns, rows = metrics_rows(results, out_dir)
    swept = [c for c in columns if c not in ("cell", "content", "style", "style_kind", "layer_set", "style_layers",
                                             "content_layers") and any(c in r.cell.sweep for r in results)]
    # Best value of each metric within each content × style group.
    best: dict[tuple[str, str], float] = {}
    for r in results:
        for m in METRICS:
            v = r.metrics.get(m.name)
            if v is None or not math.isfinite(v):
                continue
            key = (r.cell.group, m.name)
            cur = best.get(key)
            if cur is None or (v < cur if m.better == "lower" else v > cur):
                best[key] = v

    out: list[str] = []
    w = out.append
    w("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
    w(f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n")
    w(f"<h1>{e(title)}</h1>\n<p class=\"muted\">{e(subtitle)}. Written {e(time.strftime('%Y-%m-%d %H:%M'))}"
      f" in {seconds:.0f} s.</p>\n")
    if command:
        w(f"<p>Command: <code>{e(command)}</code></p>\n")
    w("<h2>Notes</h2>\n<ul class=\"notes\">\n" + "".join(f"<li>{e(n)}</li>\n" for n in notes) + "</ul>\n")
    w("<h2>Contact sheet</h2>\n<p class=\"muted\">Rows: content × style. Columns: the content, the style, then one "
      "result per style-layer set (and swept value). Captions: style and content distance, SSIM, run time.</p>\n")
    sheet = _rel(files["sheet"], out_dir)
    w(f"<p class=\"sheet\"><a href=\"{sheet}\"><img src=\"{sheet}\" alt=\"contact sheet\"></a></p>\n")

    w("<h2>Metrics</h2>\n<dl class=\"legend\">\n")
    for m in METRICS:
        w(f"<dt>{e(m.name)} ({m.better} is closer)</dt><dd>{e(m.summary)}</dd>\n")
    w("</dl>\n<p class=\"muted\">Bold: the best value of its content × style group. "
      f"All values also in <a href=\"{_rel(files['csv'], out_dir)}\">metrics.csv</a>; formulas in docs/metrics.md.</p>\n")
    head = ["", "content", "style", "layer set", *swept, *(m.name for m in METRICS), "final loss", "seconds", "status"]
    w("<table>\n<thead><tr>" + "".join(f"<th class=\"l\">{e(h)}</th>" if i < 4 + len(swept) else f"<th>{e(h)}</th>"
                                       for i, h in enumerate(head)) + "</tr></thead>\n<tbody>\n")
    groups = list(dict.fromkeys(r.cell.group for r in results))
    for r, row in zip(results, rows):
        cls = "failed" if r.status == "failed" else f"g{groups.index(r.cell.group) % 2}"
        cells = []
        if r.png is not None:
            src = _rel(r.png, out_dir)
            cells.append(f"<td class=\"l\"><a href=\"{src}\"><img src=\"{src}\" alt=\"{e(r.cell.name)}\"></a></td>")
        else:
            cells.append("<td class=\"l\">—</td>")
        kind = f" ({row['style_kind']})" if row["style_kind"] else ""
        cells += [f"<td class=\"l gl\">{e(r.cell.content_label)}</td>",
                  f"<td class=\"l gl\">{e(r.cell.style_label + kind)}</td>",
                  f"<td class=\"l\" title=\"{e(row['style_layers'])}\">{e(r.cell.layer_set)}</td>"]
        cells += [f"<td>{e(str(row.get(k, '')))}</td>" for k in swept]
        for m in METRICS:
            v = r.metrics.get(m.name)
            is_best = v is not None and best.get((r.cell.group, m.name)) == v
            attr = ' class="best"' if is_best else ""
            cells.append(f"<td{attr}>{'' if v is None else format(v, '.4g')}</td>")
        cells += [f"<td>{e(_short(row['final_loss']))}</td>", f"<td>{e(row['seconds'])}</td>",
                  f"<td class=\"l\" title=\"{e(r.error)}\">{e(r.status)}</td>"]
        w(f"<tr class=\"{cls}\">" + "".join(cells) + "</tr>\n")
    w("</tbody>\n</table>\n")

    w("<h2>Loss curves</h2>\n<p class=\"muted\">Per content × style: total, content, style and TV loss per iteration "
      "(log scale; the run's own weighted losses, not the evaluator's metrics).</p>\n")
    for label, path in files["curves"]:
        src = _rel(path, out_dir)
        w(f"<div class=\"curve\"><h3>{e(label)}</h3><a href=\"{src}\"><img src=\"{src}\" alt=\"{e(label)} losses\"></a></div>\n")

    w("<h2>Cells</h2>\n<p class=\"muted\">Each PNG embeds its run config (reproduce one with "
      "<code>restyle run --from-image PNG -o OUT.png</code>); its losses are in the CSV beside it.</p>\n<ul>\n")
    from restyle.io.record import side_paths

    for r in results:
        if r.png is None:
            w(f"<li>{e(r.cell.name)}: failed ({e(r.error)})</li>\n")
            continue
        csv_path = side_paths(r.png)["csv"]
        w(f"<li><a href=\"{_rel(r.png, out_dir)}\">{e(r.png.name)}</a> · <a href=\"{_rel(csv_path, out_dir)}\">losses</a>"
          f" <span class=\"muted\">{e(r.cell.variant)}; style layers {e(format_layers_safe(r))}</span></li>\n")
    w("</ul>\n</body>\n</html>\n")
    return "".join(out)


def format_layers_safe(r: CellResult) -> str:

    return format_layers(r.cell.config.style_layers)


def _short(text: str) -> str:
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


# ---- metrics.csv ------------------------------------------------------------------------------


def metrics_rows(results: Sequence[CellResult], out_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    from restyle.metrics import METRIC_NAMES

    swept = []
    for r in results:
        swept += [k for k in r.cell.sweep if k not in swept and k not in PARAM_COLUMNS]
    columns = ["cell", "content", "style", "style_kind", "layer_set", "style_layers", "content_layers", *swept,
               *PARAM_COLUMNS, "model_used", *METRIC_NAMES, "final_loss", "final_content", "final_style", "final_tv",
               "iterations_done", "seconds", "status", "output", "error"]
    rows = []
    for r in results:
        c = r.cell.config
        row: dict[str, Any] = {
            "cell": r.cell.name, "content": r.cell.content, "style": r.cell.style,
            "style_kind": EXAMPLE_KINDS.get(Path(r.cell.style).stem, ""), "layer_set": r.cell.layer_set,
            "style_layers": format_layers(c.style_layers), "content_layers": format_layers(c.content_layers),
        }
        for k in [*swept, *PARAM_COLUMNS]:
            row[k] = _csv_value(getattr(c, k))
        row["model_used"] = r.model_used
        for k in METRIC_NAMES:
            row[k] = f"{r.metrics[k]:.6g}" if k in r.metrics else ""
        f = r.final
        row.update({"final_loss": _num(f.get("total")), "final_content": _num(f.get("content")),
                    "final_style": _num(f.get("style")), "final_tv": _num(f.get("tv")),
                    "iterations_done": int(f["iteration"]) if f else "", "seconds": _num(f.get("seconds"), ".2f"),
                    "status": r.status, "output": r.png.relative_to(out_dir).as_posix() if r.png else "",
                    "error": r.error})
        rows.append(row)
    return columns, rows


def format_layers(layers: Mapping[str, float]) -> str:
    return ",".join(n if w == 1.0 else f"{n}:{w:g}" for n, w in layers.items())


def _csv_value(v: Any) -> str:
    if isinstance(v, dict):
        return format_layers(v)
    return format_value(v) if v is not None else ""


def _num(v: float | None, spec: str = ".6g") -> str:
    return "" if v is None else format(v, spec)


def write_metrics_csv(results: Sequence[CellResult], out_dir: Path) -> Path:

    columns, rows = metrics_rows(results, out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(out_dir / "metrics.csv", buf.getvalue())
