"""The run record: the PNG with the run's config and input digests embedded, read back by
``restyle run --from-image`` and by resuming studies; the loss CSV and plot beside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from restyle._version import __version__
from restyle.config import Config
from restyle.errors import InputImageError
from restyle.io.files import atomic_write_text, read_png_text, save_png
from restyle.io.history import history_csv, plot_history


class RunOutput(Protocol):
    """What a finished run hands to the writers (the engine's ``Result`` is one)."""

    image: Any
    history: list[dict[str, float]]
    config: Config
    notes: list[str]
    device: str
    precision: str

    @property
    def final_loss(self) -> float: ...


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


def changed_inputs(record: Mapping[str, Any]) -> list[str]:
    """The inputs of a saved run whose SHA-256 differs now (a missing file is left to the loader)."""
    changed = []
    for path, digest in record.get("inputs", {}).get("sha256", {}).items():
        now = file_digest(path)
        if now is not None and digest and now != digest:
            changed.append(path)
    return changed


def run_record(result: RunOutput, content: Any, styles: Sequence[Any]) -> dict[str, Any]:
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
    text = read_png_text(png_path)
    if PNG_KEY not in text:
        raise InputImageError(f"'{png_path}' holds no restyle run config (was it written by restyle run?)")
    try:
        record = json.loads(text[PNG_KEY])
        Config.from_dict(record["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputImageError(f"'{png_path}': its saved restyle config is unreadable ({err})") from None
    return record


def side_paths(output: str | Path) -> dict[str, Path]:
    """Files written beside OUT.png: OUT.losses.csv and OUT.losses.png."""
    out = Path(output)
    stem = out.with_suffix("") if out.suffix.lower() == ".png" else out
    return {"csv": Path(f"{stem}.losses.csv"), "plot": Path(f"{stem}.losses.png")}


def save_result(
    result: RunOutput, output: str | Path, content: Any, styles: Sequence[Any], *, history: bool = True, plot: bool = True
) -> dict[str, Path]:
    """Write the PNG (config embedded), and beside it the loss CSV and plot. Returns the paths."""
    record = run_record(result, content, styles)
    written = {"image": save_png(result.image, output, text={PNG_KEY: json.dumps(record)})}
    paths = side_paths(output)
    if history:
        written["csv"] = atomic_write_text(paths["csv"], history_csv(result.history))
    if plot and result.history:
        written["plot"] = plot_history({Path(output).name: result.history}, paths["plot"])
    return written
