"""Running a batch: skip the outputs an earlier run finished, run the others through an executor,
write each output here as it comes back, and keep ``OUT_DIR/batch.csv`` (a row per output:
output, input, style, status, seconds, final loss, error).

Statuses: ``ran``; ``skipped`` (the file already holds this config and these inputs, by SHA-256;
its seconds and loss are the earlier run's); ``failed`` (the error is the line ``restyle run``
prints); ``stopped`` (written, but the run stopped early, as ``restyle run`` exits 1 for); and
``not run`` (the batch was interrupted first).
"""

from __future__ import annotations

import csv
import functools
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

from restyle.batch.inputs import BatchItem
from restyle.config import Config
from restyle.errors import ConfigError, RestyleError
from restyle.executors import runs
from restyle.executors.base import Executor, InProcessExecutor, Outcome, Task, check_devices, report_all, shares_files
from restyle.executors.process import ProcessExecutor
from restyle.io.files import atomic_write_text
from restyle.io.history import read_history
from restyle.io.record import check_output, file_digest, side_paths
from restyle.methods import run_inputs

SUMMARY = "batch.csv"
SUMMARY_FIELDS = ("output", "input", "style", "status", "seconds", "final_loss", "error")
FAILED = ("failed", "stopped", "not run")
_SAVE_EVERY = 10.0  # seconds between rewrites of batch.csv while a batch runs


@dataclass
class ItemResult:
    item: BatchItem
    status: str
    seconds: float | None = None
    final_loss: float | None = None
    error: str = ""
    written: dict[str, Path] = field(default_factory=dict)

    def row(self) -> dict[str, str]:
        return {"output": self.item.name, "input": self.item.content, "style": ";".join(self.item.styles),
                "status": self.status, "seconds": "" if self.seconds is None else f"{self.seconds:.2f}",
                "final_loss": "" if self.final_loss is None or math.isnan(self.final_loss) else f"{self.final_loss:.6g}",
                "error": self.error}


@dataclass
class BatchSummary:
    out_dir: Path
    results: list[ItemResult]
    seconds: float
    summary_csv: Path
    ran_with: str

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.status in FAILED]


@dataclass(frozen=True)
class BatchStarted:
    """Sent once the outputs an earlier run finished are known, before any runs."""

    total: int
    to_run: int
    skipped: int
    ran_with: str


@dataclass(frozen=True)
class ItemFinished:
    """Sent as each output finishes (or fails), in the order they finish."""

    result: ItemResult
    done: int
    to_run: int


BatchEvent = Union[BatchStarted, ItemFinished]


def run_batch(
    items: Sequence[BatchItem],
    out_dir: str | Path,
    *,
    executor: Executor | None = None,
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    threads: int | None = None,
    force: bool = False,
    quality: int | None = None,
    dry_run: bool = False,
    on_event: Callable[[BatchEvent], None] | None = None,
) -> BatchSummary:
    """Make every output of ``items`` (:func:`restyle.batch.inputs.plan`) in ``out_dir``; see the
    module docstring. ``jobs`` > 1: spawned processes with ``threads`` torch threads each;
    ``devices``: dealt round-robin to the outputs that run; ``executor`` replaces that choice.
    ``force``: run even the finished outputs. ``on_event``: :class:`BatchStarted`, then an
    :class:`ItemFinished` per output run. Usage errors (an output that would overwrite an input,
    bad devices) raise a one-line :class:`ConfigError` before anything runs; a failed output is
    recorded and the others go on. ``batch.csv`` is rewritten as outputs finish and at the end,
    also when the batch is interrupted. ``dry_run``: write nothing, run nothing; the results say
    ``skipped`` or ``to run``."""
    start = time.perf_counter()
    out = Path(out_dir).expanduser()
    devices = list(devices or [])
    _check_request(items, out, devices, jobs, quality, dry_run)
    run = _BatchRun(items, out, quality, on_event or (lambda event: None))
    todo = run.plan(force, devices)
    if dry_run:
        for i, _ in todo:
            run.results[i] = ItemResult(items[i], "to run")
        return BatchSummary(out, [run.results[i] for i in range(len(items))], time.perf_counter() - start,
                            out / SUMMARY, "nothing (a dry run)")
    if executor is None:
        workers = min(jobs, len(todo)) or 1
        executor = ProcessExecutor(workers, threads) if workers > 1 else InProcessExecutor(threads)
    ran_with = executor.describe() if todo else "nothing to run"
    run.emit(BatchStarted(len(items), len(todo), len(run.results), ran_with))
    try:
        if todo:
            run.run(executor, todo)
    finally:
        summary_csv = write_summary(out, items, run.results)
    missing = [items[i].name for i in range(len(items)) if i not in run.results]
    if missing:  # an executor that broke the contract: say so rather than pass for finished
        raise RuntimeError(f"the executor returned no outcome for {len(missing)} output(s): {', '.join(missing[:5])}")
    return BatchSummary(out, [run.results[i] for i in range(len(items))], time.perf_counter() - start, summary_csv,
                        ran_with)


def _check_request(items: Sequence[BatchItem], out: Path, devices: Sequence[str], jobs: int, quality: int | None,
                   dry_run: bool) -> None:
    """Create ``out`` (not in a dry run); refuse (one line) bad devices or jobs, and outputs that do
    not fit (:func:`_check_outputs`)."""
    if not dry_run:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the output folder '{out}': {err.strerror or err}") from None
    check_devices(list(devices))
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if out.is_dir():
        _check_outputs(items, quality)


@dataclass
class _BatchRun:
    """A batch on its way: the results so far (by item index), the configs of the outputs to run,
    those whose inputs could not be read to ship them, and when ``batch.csv`` was last written."""

    items: Sequence[BatchItem]
    out: Path
    quality: int | None
    emit: Callable[[BatchEvent], None]
    results: dict[int, ItemResult] = field(default_factory=dict)
    configs: dict[int, Config] = field(default_factory=dict)
    unreadable: list[tuple[int, Outcome]] = field(default_factory=list)
    saved_at: float = 0.0

    def plan(self, force: bool, devices: Sequence[str]) -> list[tuple[int, Config]]:
        """The outputs to run, with their configs (``devices`` dealt round-robin); those an earlier
        run finished are kept as skipped results."""
        digest = functools.lru_cache(maxsize=None)(file_digest)  # a style shared by many outputs is read once
        todo: list[tuple[int, Config]] = []
        for i, item in enumerate(self.items):
            record = None if force else runs.finished_record(item.output, item.config, item.content, item.styles,
                                                               digest=digest)
            if record is not None:
                self.results[i] = _skipped(item, record)
                continue
            config = item.config.replace(device=devices[len(todo) % len(devices)]) if devices else item.config
            todo.append((i, config))
        self.configs = dict(todo)
        return todo

    def run(self, executor: Executor, todo: Sequence[tuple[int, Config]]) -> None:
        """Run ``todo`` through ``executor``, writing each output as it comes back."""
        self.saved_at = time.monotonic()
        report_all(executor, runs.run_task, self.tasks(executor, todo), self.finished, self.unreadable)

    def tasks(self, executor: Executor, todo: Sequence[tuple[int, Config]]) -> Iterator[tuple[int, Task]]:
        ship = not shares_files(executor)
        for i, config in todo:
            item = self.items[i]
            try:
                yield i, runs.make_task(config, item.content, item.styles, ship=ship,
                                        pixels=item.output.suffix.lower() in (".tif", ".tiff"))
            except RestyleError as err:
                self.unreadable.append((i, runs.failure_outcome(err)))

    def finished(self, i: int, outcome: Outcome) -> None:
        self.results[i] = _result(self.items[i], self.configs[i], outcome, self.quality)
        to_run = len(self.configs)
        self.emit(ItemFinished(self.results[i], len(self.results) - (len(self.items) - to_run), to_run))
        if time.monotonic() - self.saved_at > _SAVE_EVERY:
            write_summary(self.out, self.items, self.results)
            self.saved_at = time.monotonic()


def _check_outputs(items: Sequence[BatchItem], quality: int | None) -> None:
    """Refuse (one line, before anything runs) an output whose format or ``quality`` does not fit,
    or which, or whose loss CSV or record, is one of the batch's inputs. ``check_output`` gives
    the message; it runs for the first output of each format and for those whose paths meet an input."""
    inputs = {Path(p).resolve() for item in items for _, p in run_inputs(item.content, item.styles, item.config)}
    formats: set[str] = set()
    for item in items:
        written = [item.output, *side_paths(item.output).values()]
        if item.output.suffix.lower() not in formats or any(p.resolve() in inputs for p in written):
            formats.add(item.output.suffix.lower())
            check_output(item.output, run_inputs(item.content, item.styles, item.config), plot=False, quality=quality)


def _skipped(item: BatchItem, record: dict[str, Any]) -> ItemResult:
    try:
        history = read_history(side_paths(item.output)["csv"])
        seconds = float(history[-1]["seconds"]) if history else None
    except (OSError, ValueError, KeyError, RestyleError):
        seconds = None
    loss = record.get("final_loss")
    return ItemResult(item, "skipped", seconds, float(loss) if isinstance(loss, (int, float)) else None)


def _result(item: BatchItem, config: Config, outcome: Outcome, quality: int | None) -> ItemResult:
    """The result of an output whose outcome came back: written here, or failed."""
    if outcome.get("error"):
        return ItemResult(item, "failed", outcome.get("seconds"), error=outcome["error"])
    try:
        written = runs.save_output(outcome, config, item.output, item.content, item.styles, quality=quality)
    except RestyleError as err:
        return ItemResult(item, "failed", outcome.get("seconds"), error=runs.failure_outcome(err)["error"])
    history = outcome["history"]
    loss = history[-1]["total"] if history else None
    stopped = outcome.get("stopped_early")
    return ItemResult(item, "stopped" if stopped else "ran", outcome.get("seconds"), loss, stopped or "", written)


def write_summary(out: Path, items: Sequence[BatchItem], results: dict[int, ItemResult]) -> Path:
    """``OUT_DIR/batch.csv``, a row per output in the batch's order (``not run`` for those without
    a result yet), written atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for i, item in enumerate(items):
        writer.writerow((results.get(i) or ItemResult(item, "not run")).row())
    return atomic_write_text(out / SUMMARY, text.getvalue())
