"""A study's contact sheet (PNG, drawn with Pillow): one row per content × style, one column per
layer set / swept value, each result captioned with its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from restyle.io import images
from restyle.io.files import save_png
from restyle.study.grid import EXAMPLE_KINDS, CellResult

BACKGROUND = (255, 255, 255)
PANEL = (236, 236, 236)
INK = (20, 20, 20)
MUTED = (90, 90, 90)


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
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


def group_results(results: Sequence[CellResult]) -> tuple[dict[str, list[CellResult]], list[str]]:
    """The results by content × style group (in order), and the variants (columns) in order."""
    groups: dict[str, list[CellResult]] = {}
    variants: list[str] = []
    for r in results:
        groups.setdefault(r.cell.group, []).append(r)
        if r.cell.variant not in variants:
            variants.append(r.cell.variant)
    return groups, variants


def contact_sheet(results: Sequence[CellResult], path: str | Path, *, thumb: int = 160, title: str = "") -> Path:
    """One row per content × style: a row label, the content, the style, then one result per
    layer set / swept value, each captioned with its metrics; column headers on top."""

    groups, variants = group_results(results)
    pad, label_w = 10, 150
    f_title, f_head, f_cap = font(18), font(14), font(12)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = {id(f): int(f.getbbox("Ag")[3] - f.getbbox("Ag")[1]) + 4 for f in (f_title, f_head, f_cap)}
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

    for rs in groups.values():
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
