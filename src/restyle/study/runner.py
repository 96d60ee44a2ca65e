"""Studies: run a grid of style transfers (content × style × layer set × swept options), score
every output with the fixed evaluator of :mod:`restyle.metrics`, and write a report.

    restyle study photo.jpg --styles a.jpg b.jpg --layer-sets gatys seed --sweep style_weight=10,100 -o DIR
    restyle study --preset seed-table -o DIR        # the seed notebook's Table/Figure 1

DIR receives ``cells/*.png`` (each with its run config embedded and its ``.losses.csv``),
``contact_sheet.png``, ``metrics.csv``, ``curves/*.png`` (loss curves overlaid per content ×
style) and ``index.html`` (opens offline). Rerunning skips cells whose PNG already holds the same
config and inputs; ``--jobs N`` runs cells in N processes, ``--devices cuda:0,cuda:1`` spreads
them over GPUs. Cells run through an executor (:mod:`restyle.executors`): this process by default,
spawned processes for ``jobs`` > 1, or any backend passed as ``executor=`` (for a Ray cluster,
the input files travel to the workers as bytes). Outputs come back to this process, which writes
them. Every output is scored by the study's evaluator (``evaluator=``, default ``restyle.metrics.Evaluator()``), whose settings
travel to the workers with each task.

>>> from restyle.study import build_grid, run_study
>>> cells = build_grid(["photo.jpg"], ["a.jpg"], layer_sets=["gatys", "seed"], sweeps={"style_weight": [10, 100]},
...                    options={"size": 128, "iterations": 50})
>>> summary = run_study(cells, "out_dir")
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from restyle.errors import ConfigError, RestyleError
from restyle.executors import runs
from restyle.executors.base import Executor, InProcessExecutor, Outcome, Task, default_threads, report_all, shares_files
from restyle.executors.base import check_devices as _check_devices
from restyle.executors.process import ProcessExecutor
from restyle.io.history import read_history
from restyle.spec import LAYER_SETS
from restyle.study.grid import Cell, CellResult, StudySummary
from restyle.study.report import format_layers

if TYPE_CHECKING:
    from restyle.config import Config
    from restyle.metrics import Evaluator

__all__ = ["default_threads", "finished_record", "run_cell", "run_study", "study_notes"]


# ---------------------------------------------------------------------------------------------
# Resuming


def finished_record(cell: Cell, png: Path) -> dict[str, Any] | None:
    """The saved run record of ``png`` when it is this cell's finished output, else None."""
    return runs.finished_record(png, cell.config, cell.content, [cell.style])


# ---------------------------------------------------------------------------------------------
# Running


def run_cell(task: Task) -> Outcome:
    """Run one cell and score it (in the calling or a worker process): the task function of a
    study's executor. ``task``: a :func:`restyle.executors.runs.make_task` task (config, content,
    styles: [style], and the files' bytes for executors that share no file system) with the
    evaluator's ``eval_size`` and ``eval_device``. The outcome carries the output back (the runner
    writes it) with history, metrics, model_used, notes, stopped_early and error (empty); or only
    error."""
    from restyle import metrics
    from restyle.methods import method_for

    start = time.perf_counter()
    try:
        evaluator = metrics.shared_evaluator(task.get("eval_size", metrics.EVAL_SIZE), task.get("eval_device", "cpu"))
        with runs.task_inputs(task) as inputs:
            try:
                result = method_for(inputs.config).run(inputs.content, inputs.styles, inputs.config)
                scores = evaluator.score(result.image, inputs.content, inputs.styles[0]).as_dict()
                outcome = runs.result_outcome(result, start, inputs)
            except Exception as err:  # noqa: BLE001 - one failed cell must not end the study; it is reported
                return runs.failure_outcome(err, inputs)
        return {**outcome, "metrics": scores, "model_used": outcome["model"]}
    except Exception as err:  # noqa: BLE001
        return runs.failure_outcome(err)


def _rescore(cell: Cell, png: Path, record: dict[str, Any], evaluator: Evaluator) -> CellResult:
    from restyle.io.record import side_paths

    history = read_history(side_paths(png)["csv"])
    scores = evaluator.score(png, cell.content, cell.style).as_dict()
    return CellResult(cell, "skipped", png, history, scores, record["config"].get("model", ""),
                      list(record.get("notes") or []))


def run_study(
    cells: Sequence[Cell],
    out_dir: str | Path,
    *,
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    threads: int | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    title: str = "restyle study",
    command: str = "",
    executor: Executor | None = None,
    evaluator: Evaluator | None = None,
) -> StudySummary:
    """Run (or resume) ``cells`` into ``out_dir`` and write the report; see the module docstring.

    ``jobs`` > 1 runs cells in spawned processes, each with ``threads`` torch threads (default
    max(1, CPUs // jobs), at most $OMP_NUM_THREADS); with one job, cells run in this process, with
    ``threads`` threads if given (else torch's current setting). ``devices`` are dealt round-robin
    (into each cell's config). ``executor`` replaces that choice (``jobs`` and ``threads`` are then
    unused). ``evaluator`` scores the outputs (default ``Evaluator()``: 256 px, CPU); workers build
    one with the same settings.
    """
    from restyle import metrics
    from restyle.study import report

    start = time.perf_counter()
    out = Path(out_dir).expanduser()
    devices = list(devices or [])
    _check_request(out, devices, jobs, threads)
    evaluator = evaluator if evaluator is not None else metrics.shared_evaluator()
    run = _StudyRun(cells, out, evaluator, progress or (lambda s: None))
    todo = run.plan(force, devices)
    if executor is None:
        workers = min(jobs, len(todo)) or 1
        executor = ProcessExecutor(workers, threads) if workers > 1 else InProcessExecutor(threads)
    run.run(executor, todo)
    missing = [cells[i].name for i in range(len(cells)) if i not in run.results]
    if missing:  # an executor that broke the contract: say so rather than write a partial report
        raise RuntimeError(f"the executor returned no outcome for {len(missing)} cell(s): {', '.join(missing[:5])}")
    ordered = [run.results[i] for i in range(len(cells))]
    seconds = time.perf_counter() - start
    notes = study_notes(ordered, ran_with=executor.describe(), devices=devices, evaluator=evaluator)
    files = report.write_report(out, ordered, notes=notes, title=title, command=command, seconds=seconds)
    return StudySummary(out, ordered, seconds, files, notes)


def _check_request(out: Path, devices: Sequence[str], jobs: int, threads: int | None) -> None:
    """Create ``out/cells``; refuse (one line) bad devices, jobs or threads."""
    try:
        (out / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the study directory '{out}': {err.strerror or err}") from None
    _check_devices(list(devices))
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")


@dataclass
class _StudyRun:
    """A study's cells on their way: the results so far (by cell index), the configs of the cells
    to run, and the cells whose inputs could not be read to ship them."""

    cells: Sequence[Cell]
    out: Path
    evaluator: Evaluator
    say: Callable[[str], None]
    results: dict[int, CellResult] = field(default_factory=dict)
    configs: dict[int, Config] = field(default_factory=dict)
    unreadable: list[tuple[int, Outcome]] = field(default_factory=list)

    def png(self, i: int) -> Path:
        return self.out / "cells" / f"{self.cells[i].name}.png"

    def plan(self, force: bool, devices: Sequence[str]) -> list[tuple[int, Config]]:
        """The cells to run, with their configs (``devices`` dealt round-robin); those an earlier
        run finished are rescored and kept as results."""
        todo: list[tuple[int, Config]] = []
        for i, cell in enumerate(self.cells):
            png = self.png(i)
            record = None if force else finished_record(cell, png)
            if record is not None:
                self.results[i] = _rescore(cell, png, record, self.evaluator)
                self.say(f"[{i + 1}/{len(self.cells)}] {cell.name}: done earlier, skipped")
                continue
            config = cell.config
            if devices:
                config = config.replace(device=devices[len(todo) % len(devices)])
            todo.append((i, config))
        self.configs = dict(todo)
        return todo

    def run(self, executor: Executor, todo: Sequence[tuple[int, Config]]) -> None:
        """Run ``todo`` through ``executor``, recording each outcome as it comes back."""
        report_all(executor, run_cell, self.tasks(executor, todo), self.finished, self.unreadable)

    def tasks(self, executor: Executor, todo: Sequence[tuple[int, Config]]) -> Iterator[tuple[int, Task]]:
        ship = not shares_files(executor)
        for i, config in todo:
            try:
                task = runs.make_task(config, self.cells[i].content, [self.cells[i].style], ship=ship)
            except RestyleError as err:
                self.unreadable.append((i, runs.failure_outcome(err)))
                continue
            yield i, {**task, "eval_size": self.evaluator.size, "eval_device": str(self.evaluator.device)}

    def finished(self, i: int, outcome: Outcome) -> None:
        cell, png, n = self.cells[i], self.png(i), len(self.cells)
        if not outcome.get("error"):
            try:
                runs.save_output(outcome, self.configs[i], png, cell.content, [cell.style])
            except RestyleError as err:
                outcome = runs.failure_outcome(err)
        if outcome.get("error"):
            self.results[i] = CellResult(cell, "failed", None, error=outcome["error"])
            self.say(f"[{i + 1}/{n}] {cell.name}: FAILED: {outcome['error']}")
            return
        r = CellResult(cell, "ran", png, outcome["history"], outcome["metrics"], outcome["model_used"],
                       outcome["notes"], stopped_early=outcome["stopped_early"])
        self.results[i] = r
        self.say(f"[{i + 1}/{n}] {cell.name}: {r.final.get('seconds', 0):.1f} s, "
                 f"final loss {r.final.get('total', float('nan')):.4g}, style {r.metrics['style_distance']:.3g}, "
                 f"ssim {r.metrics['ssim']:.3f}")


def study_notes(results: Sequence[CellResult], *, ran_with: str = "1 process(es)", devices: Sequence[str] = (),
                evaluator: Evaluator | None = None) -> list[str]:
    """Plain-language notes for the report: fallbacks, failures, skipped cells, how it ran
    (``ran_with``: the executor's description), the evaluator."""
    from restyle import metrics

    notes: list[str] = []
    fell_back = [r for r in results if r.status != "failed" and r.cell.config.model == "vgg16" and r.model_used == "vgg19"]
    if fell_back:
        notes.append(
            f"VGG16 weights unavailable: the seed's layer names ran on the embedded VGG19 ({len(fell_back)} of "
            f"{len(results)} cells asked for VGG16). With vgg16-397923af.pth in the torch hub cache, rerunning "
            "the study runs these cells again on VGG16.")
    for r in results:
        for n in dict.fromkeys(r.notes):
            if not n.startswith("VGG16 weights unavailable"):
                notes.append(f"{r.cell.name}: {n}")
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        notes.append(f"{r.cell.name} failed: {r.error}")
    skipped = sum(r.status == "skipped" for r in results)
    if skipped:
        notes.append(f"{skipped} of {len(results)} cells were finished by an earlier run and not run again "
                     "(their metrics were recomputed from the saved PNGs, their losses read from the CSVs).")
    used_sets = {r.cell.layer_set: r.cell.config.style_layers for r in results}
    for label, layers in used_sets.items():
        aliases = [n for n, names in LAYER_SETS.items() if n != label and dict(layers) == {x: 1.0 for x in names}]
        if aliases:
            notes.append(f"Layer set {label} is the same as {', '.join(aliases)} ({format_layers(layers)}).")
    described = (evaluator or metrics.shared_evaluator()).describe()
    notes.append(f"Metrics come from one fixed evaluator, independent of the run settings: {described}.")
    how = ran_with + (f", cells dealt over devices {', '.join(devices)}" if devices else "")
    precisions = sorted({r.cell.config.precision for r in results})
    notes.append(f"Ran with {how}; precision setting {', '.join(precisions)} (auto = bf16 where the hardware has it).")
    return notes

