"""The run record: every output carries the run's config and input digests (inside the image
file, see :mod:`restyle.io.formats`, or in a sidecar ``OUT.json``), read back by
``restyle run --from-image`` and by resuming studies; the loss CSV and plot beside it; and the
check, before a run, that none of the files it will write is one of its inputs."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from restyle._version import __version__
from restyle.config import Config
from restyle.errors import InputImageError, OutputError, notice
from restyle.io import formats
from restyle.io.files import atomic_write_text, check_output_path, same_file
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


PNG_KEY = formats.PNG_KEY  # the PNG text chunk holding the run record


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


def run_record(result: RunOutput, content: Any, styles: Sequence[Any],
               files: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Everything needed to reproduce the run: config, inputs (with digests; ``files``: the other
    input files as (role, path), :func:`restyle.methods.run_inputs`), where it ran."""
    content_path = describe_input(content)
    style_paths = [describe_input(s) for s in styles]
    model_path = [describe_input(p) for _, p in files if os.path.isfile(p)]
    return {
        "restyle": __version__,
        "config": result.config.to_dict(),
        "inputs": {
            "content": content_path,
            "styles": style_paths,
            "sha256": {p: file_digest(p) for p in [content_path, *style_paths, *model_path] if p},
        },
        "device": result.device,
        "precision": result.precision,
        "iterations_done": max(0, len(result.history) - 1),
        "stop_reason": getattr(result, "stop_reason", ""),
        "final_loss": result.final_loss,
        "notes": result.notes,
    }


def read_run_record(path: str | Path) -> dict[str, Any]:
    """The run record saved with a restyle output of any format (inside the file, or in its
    ``OUT.json`` sidecar), or a one-line :class:`InputImageError` naming the file."""
    text, source = formats.read_embedded(path), f"'{path}'"
    if text is None:
        text, source = _read_sidecar(Path(path))
    if text is None:
        raise InputImageError(f"'{path}' holds no restyle run config (was it written by restyle run?)")
    try:
        record = json.loads(text)
        record.pop("image", None)  # the sidecar's note of the image it belongs to
        Config.from_dict(record["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputImageError(f"{source}: its saved restyle config is unreadable ({err})") from None
    return record


def _read_sidecar(image: Path) -> tuple[str | None, str]:
    """The text of the sidecar ``OUT.json`` when it describes *image*, and how to name it."""
    sidecar = side_paths(image)["record"]
    try:
        text = sidecar.read_text(encoding="utf-8")
        described = json.loads(text).get("image", {})
    except (OSError, ValueError, AttributeError):
        return None, ""
    if not isinstance(described, dict) or described.get("file") != image.name:
        return None, ""  # another output's sidecar (out.bmp's, when reading out.jpg)
    digest = described.get("sha256")
    if digest and file_digest(str(image)) != digest:
        notice(f"'{image}' has changed since its run record '{sidecar}' was written")
    return text, f"'{sidecar}'"


def side_paths(output: str | Path) -> dict[str, Path]:
    """Files written beside the output OUT.png (or OUT.jpg, ...): the loss history
    OUT.losses.csv, its plot OUT.losses.png and, for formats with no room for it, the run
    record OUT.json."""
    stem = formats.image_stem(output)
    return {"csv": Path(f"{stem}.losses.csv"), "plot": Path(f"{stem}.losses.png"), "record": Path(f"{stem}.json")}


def check_output(output: str | Path, inputs: Sequence[tuple[str, str]], *, history: bool = True,
                 plot: bool = True, save_every: int = 0, quality: int | None = None) -> Path:
    """Check, before a run starts, that its output can be written: a supported extension (and
    *quality* fits it), a writable directory, and no file the run writes (the image, its loss
    history and plot, its sidecar record, its snapshots) is one of its *inputs* (from
    :func:`restyle.methods.run_inputs`). Returns the resolved output path; raises a one-line error otherwise."""
    formats.output_format(output, quality)
    target = check_output_path(output)
    for role, given in inputs:
        if same_file(output, given):
            raise OutputError(f"output '{output}' is the {_named(role, given, output)}; {_ANOTHER}")
    sides = side_paths(output)
    written = {"record": "run record"}
    if history:
        written["csv"] = "loss history"
    if plot:
        written["plot"] = "loss plot"
    stem = formats.image_stem(output)
    snapshot = re.compile(re.escape(stem.name) + r"\.iter\d{4,}\.png")
    # OUT.iterNNNN.png: those there already (links, perhaps), and any the input's name matches
    snapshots = [p for p in stem.parent.glob(f"{glob.escape(stem.name)}.iter*.png") if snapshot.fullmatch(p.name)]
    for role, given in inputs:
        for key, what in written.items():
            if same_file(sides[key], given):
                raise OutputError(f"output '{output}' would write its {what} to '{sides[key]}', which is the "
                                  f"{_named(role, given, sides[key])}; {_ANOTHER}")
        if save_every and (any(same_file(p, given) for p in snapshots) or (
                snapshot.fullmatch(Path(given).name) and same_file(stem.parent / Path(given).name, given))):
            raise OutputError(f"output '{output}' would write a snapshot (--save-every) over the {role} "
                              f"'{given}'; {_ANOTHER}")
    return target


_ANOTHER = "choose another output path (restyle never overwrites its inputs)"


def _named(role: str, given: str, written: str | Path) -> str:
    """'content image', or 'content image 'photo.jpg' (the same file)' when the paths differ."""
    return role if os.fspath(written) == given else f"{role} '{given}' (the same file)"


def save_result(result: RunOutput, output: str | Path, content: Any, styles: Sequence[Any], *, history: bool = True,
                plot: bool = True, quality: int | None = None, files: Sequence[tuple[str, str]] = ()) -> dict[str, Path]:
    """Write the image in the format its extension names, with the run record inside it (or,
    for formats with no room, in ``OUT.json`` beside it), and beside it the loss CSV and plot.
    Returns the paths written."""
    record = run_record(result, content, styles, files)
    pixels = getattr(result, "pixels", None)
    if pixels is not None:  # 1x3xHxW float tensor on the CPU -> HxWx3 array
        pixels = pixels.detach()[0].permute(1, 2, 0).float().numpy()
    image, embedded = formats.write_image(output, result.image, json.dumps(record), pixels=pixels, quality=quality)
    written = {"image": image}
    paths = side_paths(output)
    if not embedded:
        record["image"] = {"file": Path(output).name, "sha256": file_digest(str(image))}
        written["record"] = atomic_write_text(paths["record"], json.dumps(record, indent=2) + "\n")
    if history and result.history:  # a fast model's run has no history
        written["csv"] = atomic_write_text(paths["csv"], history_csv(result.history))
    if plot and result.history:
        written["plot"] = plot_history({Path(output).name: result.history}, paths["plot"])
    return written
