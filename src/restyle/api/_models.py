"""Fast models a front-end offers (``restyle serve --models DIR``): the bundled ones and those in a
folder, listed by name with what their records say."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restyle.errors import ConfigError
from restyle.methods import fastmodel

log = logging.getLogger("restyle")


@dataclass(frozen=True)
class FastModelInfo:
    """One fast model on offer: ``name`` (the file's stem; what a job names it by), the file's
    ``path`` (for the server only, never shown to clients), the names of the ``styles`` it holds
    (a job's blend gives one weight each, in this order), and from its record the network's
    ``shape``, the training ``steps`` and ``photos`` (None when the record does not say), and
    whether it is ``bundled`` with restyle."""

    name: str
    path: Path
    styles: tuple[str, ...]
    shape: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    photos: int | None = None
    bundled: bool = False


def fast_models(folder: str | Path | None = None, *,
                on_skip: Callable[[str], None] | None = None) -> list[FastModelInfo]:
    """The bundled fast models, then the ``*.pt`` files in ``folder`` (not its subfolders), each
    read with :func:`restyle.methods.fastmodel.read_model`, sorted by name. A file that is not a
    readable model, or whose name an earlier entry has, is left out and ``on_skip`` gets one line
    saying why (default: a warning in the ``restyle`` log). A ``folder`` that is not a directory
    is a one-line :class:`~restyle.errors.ConfigError`."""
    skip = on_skip if on_skip is not None else log.warning
    files = [(p, True) for p in sorted(fastmodel.BUNDLED.glob("*.pt"))]
    if folder is not None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--models {folder}: no such folder")
        files += [(p, False) for p in sorted(folder.iterdir()) if p.suffix in fastmodel.SUFFIXES and p.is_file()]
    found: dict[str, FastModelInfo] = {}
    for path, bundled in files:
        if path.stem in found:
            skip(f"fast model '{path}' left out: a model named '{path.stem}' is listed already")
            continue
        try:
            model = fastmodel.read_model(path)
        except ConfigError as err:
            if not bundled:  # the bundled folder also holds the universal method's decoder
                skip(f"{err}; left out")
            continue
        record = model.record
        info = FastModelInfo(
            name=path.stem, path=path, styles=tuple(model.style_names), shape=dict(record.get("shape") or {}),
            steps=_int_or_none(record.get("steps")), photos=_int_or_none(record.get("photos")), bundled=bundled)
        found[path.stem] = info
    return list(found.values())


def model_names(models: list[FastModelInfo]) -> dict[str, FastModelInfo]:
    """Every name a job may give for ``models``: each model's, and (as ``--fast-model`` takes them,
    :func:`restyle.methods.fastmodel.resolve`) each style a bundled model holds, unless a model has
    that name."""
    names = {m.name: m for m in models}
    for m in models:
        if m.bundled:
            for style in m.styles:
                names.setdefault(style, m)
    return names


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
