"""A study's report: the contact sheet (PNG, :mod:`.sheet`), loss curves, metrics.csv and
index.html.

index.html is rendered from ``templates/report.html`` with Jinja2 (autoescape on: every label,
note and error is escaped); it opens offline: inline CSS, no scripts, every image by a path
relative to the study directory.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from restyle.io.files import atomic_write_text
from restyle.study.grid import EXAMPLE_KINDS, PARAM_COLUMNS, CellResult, format_value
from restyle.study.sheet import contact_sheet, group_results

__all__ = ["contact_sheet", "format_layers", "metrics_rows", "render_html", "write_curves", "write_metrics_csv",
           "write_report"]


def write_curves(results: Sequence[CellResult], out_dir: Path) -> list[tuple[str, Path]]:
    """Loss curves overlaid per content × style group: ``curves/<group>.png``."""
    from restyle.io.history import plot_history

    groups, _ = group_results(results)
    written = []
    for group, rs in groups.items():
        hist: dict[str, Sequence[dict[str, float]]] = {r.cell.variant: r.history for r in rs if r.history}
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


def _rel(path: Path, out_dir: Path) -> str:
    return quote(Path(path).resolve().relative_to(Path(out_dir).resolve()).as_posix())


@functools.lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("restyle.study", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("report.html")


def render_html(out_dir: Path, results: Sequence[CellResult], files: dict[str, Any], *, notes: Sequence[str],
                title: str, subtitle: str, command: str, seconds: float) -> str:
    """index.html: ``templates/report.html`` filled with the study's results (values escaped there)."""
    from restyle.io.record import side_paths
    from restyle.metrics import METRICS

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

    head = ["", "content", "style", "layer set", *swept, *(m.name for m in METRICS), "final loss", "seconds", "status"]
    groups = list(dict.fromkeys(r.cell.group for r in results))
    table = []
    for r, row in zip(results, rows):
        values = [r.metrics.get(m.name) for m in METRICS]
        table.append({
            "cls": "failed" if r.status == "failed" else f"g{groups.index(r.cell.group) % 2}",
            "img": _rel(r.png, out_dir) if r.png is not None else None, "name": r.cell.name,
            "content": r.cell.content_label,
            "style": r.cell.style_label + (f" ({row['style_kind']})" if row["style_kind"] else ""),
            "layers": row["style_layers"], "layer_set": r.cell.layer_set,
            "swept": [str(row.get(k, "")) for k in swept],
            "metrics": [{"text": "" if v is None else format(v, ".4g"),
                         "best": v is not None and best.get((r.cell.group, m.name)) == v} for m, v in zip(METRICS, values)],
            "final_loss": _short(row["final_loss"]), "seconds": row["seconds"], "status": r.status, "error": r.error,
        })
    cells = [{"png": None, "name": r.cell.name, "error": r.error} if r.png is None else
             {"png": _rel(r.png, out_dir), "png_name": r.png.name, "csv": _rel(side_paths(r.png)["csv"], out_dir),
              "variant": r.cell.variant, "layers": format_layers(r.cell.config.style_layers)} for r in results]
    return _template().render(
        title=title, subtitle=subtitle, written=time.strftime("%Y-%m-%d %H:%M"), seconds=f"{seconds:.0f}",
        command=command, notes=list(notes), sheet=_rel(files["sheet"], out_dir), csv=_rel(files["csv"], out_dir),
        metrics=METRICS, head=[{"label": h, "left": i < 4 + len(swept)} for i, h in enumerate(head)], rows=table,
        curves=[{"label": label, "src": _rel(path, out_dir)} for label, path in files["curves"]], cells=cells)


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
