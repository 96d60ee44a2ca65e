"""Studies: a grid of runs (:mod:`.grid`), run and resumed through an executor (:mod:`.runner`;
the executors are :mod:`restyle.executors`), reported (:mod:`.report`). Names load on first use:
``restyle study --help`` needs only the grid's presets, not torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr

_EXPORTS = {
    "STUDY_PRESETS": "restyle.study.grid", "Cell": "restyle.study.grid", "CellResult": "restyle.study.grid",
    "StudySummary": "restyle.study.grid", "build_grid": "restyle.study.grid", "parse_sweep": "restyle.study.grid",
    "parse_value": "restyle.study.grid", "preset_grid": "restyle.study.grid",
    "run_cell": "restyle.study.runner", "run_study": "restyle.study.runner",
    "Executor": "restyle.executors.base", "InProcessExecutor": "restyle.executors.base",
    "ProcessExecutor": "restyle.executors.process",
}

__all__ = ["STUDY_PRESETS", "Cell", "CellResult", "Executor", "InProcessExecutor", "ProcessExecutor", "StudySummary",
           "build_grid", "parse_sweep", "parse_value", "preset_grid", "run_cell", "run_study"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from restyle.executors.base import Executor, InProcessExecutor
    from restyle.executors.process import ProcessExecutor
    from restyle.study.grid import (
        STUDY_PRESETS,
        Cell,
        CellResult,
        StudySummary,
        build_grid,
        parse_sweep,
        parse_value,
        preset_grid,
    )
    from restyle.study.runner import run_cell, run_study
