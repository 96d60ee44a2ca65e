"""The loss history beside every output: ``OUT.losses.csv`` and the plot ``OUT.losses.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from restyle.io.files import atomic_write_bytes

#: Columns of the loss history: ``iteration`` counts optimiser steps over all scales (it keeps
#: increasing from one coarse-to-fine stage to the next); ``scale`` is the stage's longest side.
HISTORY_FIELDS = ("iteration", "scale", "total", "content", "style", "tv", "photo", "seconds")
LOSS_FIELDS = ("total", "content", "style", "tv", "photo")


def history_csv(history: Sequence[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (int(row[k]) if k == "iteration" else f"{row[k]:.6g}") for k in HISTORY_FIELDS})
    return buf.getvalue()


def read_history(path: str | Path) -> list[dict[str, float]]:
    """The rows of a ``.losses.csv`` file, as floats."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


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
    return atomic_write_bytes(path, buf.getvalue())
