"""Studies: grids of runs, scored and reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from restyle.api._web import check_requests
from restyle.study import Cell, StudySummary
from restyle.study import build_grid as _build_grid
from restyle.study import preset_grid as _preset_grid
from restyle.study import run_study as _run_study


def build_grid(contents: Sequence[str], styles: Sequence[str], layer_sets: Sequence[str] | None = None,
               sweeps: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
               options: Mapping[str, Any] | None = None, preset: str | None = None) -> list[Cell]:
    """The cells of a study (see :func:`restyle.study.build_grid`)."""
    return _build_grid(contents, styles, layer_sets, sweeps, options, preset)


def preset_grid(name: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Cell]:
    """The cells of a study preset such as ``seed-table``."""
    return _preset_grid(name, options, **kwargs)


def run_study(cells: Sequence[Cell], out_dir: str | Path, **kwargs: Any) -> StudySummary:
    """Run (or resume) a study's cells into ``out_dir`` and write its report. A cell whose output
    would pass the pixel cap is refused before any cell runs."""
    check_requests((cell.name, cell.content, cell.config) for cell in cells)
    return _run_study(cells, out_dir, **kwargs)
