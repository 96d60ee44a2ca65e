"""Studies: run a grid of style transfers (content × style × layer set × swept options), score
every output with the fixed evaluator of :mod:`restyle.metrics`, and write a report.

    restyle study photo.jpg --styles a.jpg b.jpg --layer-sets gatys seed --sweep style_weight=10,100 -o DIR
    restyle study --preset seed-table -o DIR        # the seed notebook's Table/Figure 1

DIR receives ``cells/*.png`` (each with its run config embedded and its ``.losses.csv``),
``contact_sheet.png``, ``metrics.csv``, ``curves/*.png`` (loss curves overlaid per content ×
style) and ``index.html`` (opens offline). Rerunning skips cells whose PNG already holds the same
config and inputs; ``--jobs N`` runs cells in N processes, ``--devices cuda:0,cuda:1`` spreads
them over GPUs.

>>> from restyle.study import build_grid, run_study
>>> cells = build_grid(["photo.jpg"], ["a.jpg"], layer_sets=["gatys", "seed"], sweeps={"style_weight": [10, 100]},
...                    options={"size": 128, "iterations": 50})
>>> summary = run_study(cells, "out_dir")
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from restyle.config import Config
from restyle.errors import ConfigError, RestyleError
from restyle.io.history import read_history
from restyle.spec import LAYER_SETS
from restyle.study.grid import (
    IGNORED_FOR_MATCH,
    Cell,
    CellResult,
    StudySummary,
    vgg16_available,
)
from restyle.study.report import format_layers

log = logging.getLogger("restyle")

# ---------------------------------------------------------------------------------------------
# Resuming


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    d = Config.from_dict(config).to_dict()
    for k in IGNORED_FOR_MATCH:
        d.pop(k, None)
    return d


def expected_model(config: Config) -> str:
    """The model a cell runs on: vgg19 when it asks for vgg16 with fallback and VGG16 is absent."""
    if config.model == "vgg16" and config.weights is None and config.fallback_vgg19 and not vgg16_available():
        return "vgg19"
    return config.model


def finished_record(cell: Cell, png: Path) -> dict[str, Any] | None:
    """The saved run record of ``png`` when it is this cell's finished output, else None."""
    from restyle.io.record import file_digest, read_run_record, side_paths

    if not png.is_file() or not side_paths(png)["csv"].is_file():
        return None
    try:
        record = read_run_record(png)
        saved = _comparable(record["config"])
    except (RestyleError, KeyError, TypeError, ValueError):
        return None
    want = _comparable({**cell.config.to_dict(), "model": expected_model(cell.config)})
    if saved != want:
        return None
    inputs = record.get("inputs", {})
    content, style = str(Path(cell.content).resolve()), str(Path(cell.style).resolve())
    if inputs.get("content") != content or inputs.get("styles") != [style]:
        return None
    digests = inputs.get("sha256", {})
    if any(digests.get(p) != file_digest(p) for p in (content, style)):
        return None
    return record


# ---------------------------------------------------------------------------------------------
# Running


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Once(logging.Filter):
    """Let each distinct notice through once (every cell of a fallback study says the same)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("restyle").addFilter(_Once())


def run_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Run one cell, save its PNG and CSV, score it (in the calling or a worker process)."""
    from restyle import metrics
    from restyle.engine import StyleTransfer
    from restyle.io.record import save_result

    try:
        metrics.EVAL_SIZE = task.get("eval_size", metrics.EVAL_SIZE)  # the caller's evaluator, in a worker too
        config = Config.from_dict(task["config"])
        result = StyleTransfer(config).run(task["content"], [task["style"]])
        save_result(result, task["png"], task["content"], [task["style"]], plot=False)
        scores = metrics.score(result.image, task["content"], task["style"]).as_dict()
        return {"history": result.history, "metrics": scores, "model_used": result.config.model,
                "notes": result.notes, "stopped_early": result.stopped_early, "error": ""}
    except Exception as err:  # noqa: BLE001 - one failed cell must not end the study; it is reported
        return {"error": f"{type(err).__name__}: {err}" if not isinstance(err, RestyleError) else str(err)}


def _rescore(cell: Cell, png: Path, record: dict[str, Any]) -> CellResult:
    from restyle import metrics
    from restyle.io.record import side_paths

    history = read_history(side_paths(png)["csv"])
    scores = metrics.score(png, cell.content, cell.style).as_dict()
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
) -> StudySummary:
    """Run (or resume) ``cells`` into ``out_dir`` and write the report; see the module docstring.

    ``jobs`` > 1 runs cells in spawned processes, each with ``threads`` torch threads (default
    max(1, CPUs // jobs), at most $OMP_NUM_THREADS); with one job, cells run in this process, with
    ``threads`` threads if given (else torch's current setting). ``devices`` are dealt round-robin.
    """
    from restyle import metrics
    from restyle.study import report

    start = time.perf_counter()
    out = Path(out_dir).expanduser()
    try:
        (out / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the study directory '{out}': {err.strerror or err}") from None
    say = progress or (lambda s: None)
    devices = list(devices or [])
    _check_devices(devices)
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")

    results: dict[int, CellResult] = {}
    todo: list[tuple[int, dict[str, Any]]] = []
    for i, cell in enumerate(cells):
        png = out / "cells" / f"{cell.name}.png"
        record = None if force else finished_record(cell, png)
        if record is not None:
            results[i] = _rescore(cell, png, record)
            say(f"[{i + 1}/{len(cells)}] {cell.name}: done earlier, skipped")
            continue
        config = cell.config
        if devices:
            config = config.replace(device=devices[len(todo) % len(devices)])
        todo.append((i, {"config": config.to_dict(), "content": cell.content, "style": cell.style, "png": str(png),
                         "eval_size": metrics.EVAL_SIZE}))

    import torch

    once = _Once()
    log.addFilter(once)
    saved_threads = torch.get_num_threads()
    workers = min(jobs, len(todo)) or 1
    if workers == 1 and threads is not None:
        torch.set_num_threads(threads)
    used_threads = torch.get_num_threads() if workers == 1 else (threads or default_threads(workers))
    try:
        for i, outcome in _execute(todo, workers, used_threads):
            cell = cells[i]
            png = out / "cells" / f"{cell.name}.png"
            if outcome["error"]:
                results[i] = CellResult(cell, "failed", None, error=outcome["error"])
                say(f"[{i + 1}/{len(cells)}] {cell.name}: FAILED: {outcome['error']}")
                continue
            r = CellResult(cell, "ran", png, outcome["history"], outcome["metrics"], outcome["model_used"],
                           outcome["notes"], stopped_early=outcome["stopped_early"])
            results[i] = r
            say(f"[{i + 1}/{len(cells)}] {cell.name}: {r.final.get('seconds', 0):.1f} s, "
                f"final loss {r.final.get('total', float('nan')):.4g}, style {r.metrics['style_distance']:.3g}, "
                f"ssim {r.metrics['ssim']:.3f}")
    finally:
        log.removeFilter(once)
        torch.set_num_threads(saved_threads)

    ordered = [results[i] for i in range(len(cells))]
    seconds = time.perf_counter() - start
    notes = study_notes(ordered, jobs=workers, devices=devices, threads=used_threads)
    files = report.write_report(out, ordered, notes=notes, title=title, command=command, seconds=seconds)
    return StudySummary(out, ordered, seconds, files, notes)


def _check_devices(devices: Sequence[str]) -> None:
    for d in devices:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", d):
            raise ConfigError(f"--devices: unknown device '{d}'; write e.g. cuda:0,cuda:1 or cpu")
    if any(d.startswith("cuda") for d in devices):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--devices names CUDA devices, but no CUDA GPU is available")
        n = torch.cuda.device_count()
        bad = [d for d in devices if d.startswith("cuda:") and int(d.split(":")[1]) >= n]
        if bad:
            raise ConfigError(f"--devices: {', '.join(bad)} not present ({n} GPU(s): cuda:0..cuda:{n - 1})")


def default_threads(jobs: int) -> int:
    """Torch threads per worker process: max(1, CPUs // jobs), at most $OMP_NUM_THREADS when set."""
    n = max(1, _cpu_count() // max(1, jobs))
    env = os.environ.get("OMP_NUM_THREADS", "")
    return min(n, int(env)) if env.isdigit() and int(env) > 0 else n


def _execute(todo: list[tuple[int, dict[str, Any]]], jobs: int, threads: int) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield ``(cell index, outcome)`` as cells finish: in this process for one job, else in a
    spawn-context process pool with ``threads`` torch threads per process."""
    if not todo:
        return
    if jobs == 1:
        for i, task in todo:
            yield i, run_cell(task)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(run_cell, task): i for i, task in todo}
        try:
            for fut in as_completed(futures):
                try:
                    outcome = fut.result()
                except Exception as err:  # noqa: BLE001 - a worker died (e.g. killed for memory)
                    outcome = {"error": f"worker failed: {type(err).__name__}: {err}"}
                yield futures[fut], outcome
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def study_notes(results: Sequence[CellResult], *, jobs: int = 1, devices: Sequence[str] = (),
                threads: int | None = None) -> list[str]:
    """Plain-language notes for the report: fallbacks, failures, skipped cells, how it ran."""
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
    notes.append(f"Metrics come from one fixed evaluator, independent of the run settings: {metrics.describe()}.")
    how = f"{jobs} process(es)" + (f" over devices {', '.join(devices)}" if devices else "")
    how += f", {threads} torch thread(s) each" if threads else ""
    precisions = sorted({r.cell.config.precision for r in results})
    notes.append(f"Ran with {how}; precision setting {', '.join(precisions)} (auto = bf16 where the hardware has it).")
    return notes


# ---------------------------------------------------------------------------------------------
# metrics.csv
