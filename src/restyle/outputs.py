"""The output stage: the PNG (with the run's config embedded), the loss-history CSV and plot."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Sequence

from restyle import __version__, images
from restyle.config import Config
from restyle.engine import HISTORY_FIELDS, Result
from restyle.errors import InputImageError

PNG_KEY = "restyle"  # the PNG text chunk holding the run description


def describe_input(source: Any) -> str | None:
    """A path as recorded in the saved config (absolute), or None for in-memory images."""
    if isinstance(source, (str, Path)):
        return str(Path(source).expanduser().resolve())
    return None


def file_digest(path: str | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_record(result: Result, content: Any, styles: Sequence[Any]) -> dict[str, Any]:
    """Everything needed to reproduce the run: config, inputs (with digests), where it ran."""
    content_path = describe_input(content)
    style_paths = [describe_input(s) for s in styles]
    return {
        "restyle": __version__,
        "config": result.config.to_dict(),
        "inputs": {
            "content": content_path,
            "styles": style_paths,
            "sha256": {p: file_digest(p) for p in [content_path, *style_paths] if p},
        },
        "device": result.device,
        "precision": result.precision,
        "iterations_done": max(0, len(result.history) - 1),
        "final_loss": result.final_loss,
        "notes": result.notes,
    }


def read_run_record(png_path: str | Path) -> dict[str, Any]:
    """The run description saved in a restyle PNG, or an error naming the file."""
    text = images.read_png_text(png_path)
    if PNG_KEY not in text:
        raise InputImageError(f"'{png_path}' holds no restyle run config (was it written by restyle run?)")
    try:
        record = json.loads(text[PNG_KEY])
        Config.from_dict(record["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputImageError(f"'{png_path}': its saved restyle config is unreadable ({err})") from None
    return record


def history_csv(history: Sequence[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (int(row[k]) if k == "iteration" else f"{row[k]:.6g}") for k in HISTORY_FIELDS})
    return buf.getvalue()


def plot_history(histories: dict[str, Sequence[dict[str, float]]], path: str | Path, title: str = "") -> Path:
    """Loss curves (total/content/style/tv, log scale) for one or more runs, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), constrained_layout=True)
    for label, hist in histories.items():
        for ax, key in zip(axes, ("total", "content", "style", "tv")):
            points = [(r["iteration"], r[key]) for r in hist if r[key] > 0]  # log axis: 0 (e.g. content at start) has no place
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1.2)
    for ax, key in zip(axes, ("total", "content", "style", "tv")):
        ax.set_title(key)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    if len(histories) > 1:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return images.atomic_write_bytes(path, buf.getvalue())


def side_paths(output: str | Path) -> dict[str, Path]:
    """Files written beside OUT.png: OUT.losses.csv and OUT.losses.png."""
    out = Path(output)
    stem = out.with_suffix("") if out.suffix.lower() == ".png" else out
    return {"csv": Path(f"{stem}.losses.csv"), "plot": Path(f"{stem}.losses.png")}


def save_result(
    result: Result, output: str | Path, content: Any, styles: Sequence[Any], *, history: bool = True, plot: bool = True
) -> dict[str, Path]:
    """Write the PNG (config embedded), and beside it the loss CSV and plot. Returns the paths."""
    record = run_record(result, content, styles)
    written = {"image": images.save_png(result.image, output, text={PNG_KEY: json.dumps(record)})}
    paths = side_paths(output)
    if history:
        written["csv"] = images.atomic_write_text(paths["csv"], history_csv(result.history))
    if plot and result.history:
        written["plot"] = plot_history({Path(output).name: result.history}, paths["plot"])
    return written
