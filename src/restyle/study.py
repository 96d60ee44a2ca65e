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

import argparse
import csv
import dataclasses
import importlib.resources
import io
import itertools
import logging
import os
import re
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from restyle.config import LAYER_SETS, PRESETS, Config, parse_layers
from restyle.errors import ConfigError, RestyleError, notice

log = logging.getLogger("restyle")

# ---------------------------------------------------------------------------------------------
# Presets


def example(name: str) -> str:
    """The path of a bundled example image (``restyle/examples/NAME``)."""
    path = importlib.resources.files("restyle") / "examples" / name
    return str(path)


#: What the bundled example images are (the seed table compares painted and photographed styles).
EXAMPLE_KINDS = {
    "starry_night": "painting", "the_scream": "painting", "shipwreck": "painting", "woman-with-hat-matisse": "painting",
    "astronaut": "photograph", "chelsea": "photograph", "coffee": "photograph", "rocket": "photograph",
}


@dataclass(frozen=True)
class StudyPreset:
    contents: tuple[str, ...]
    styles: tuple[str, ...]
    layer_sets: tuple[str, ...]
    run_preset: str | None  # a restyle.config.PRESETS name applied to every cell
    options: Mapping[str, Any]  # defaults; the user's options override them
    description: str


#: Study presets (``restyle study --preset NAME``), besides the run presets of restyle.config.
STUDY_PRESETS: dict[str, StudyPreset] = {
    "seed-table": StudyPreset(
        contents=("chelsea.jpg", "astronaut.jpg"),
        styles=("starry_night.jpg", "the_scream.jpg", "coffee.jpg"),
        layer_sets=("seed", "seed-conv1", "seed-mixed"),  # seed-conv1 is also Gatys' set (LAYER_SETS["gatys"])
        run_preset="seed",
        # 18 cells. At 192 px, 40 L-BFGS iterations already show each layer set's texture clearly
        # (the loss keeps falling slowly after that) and keep a 2-core CPU run near 10 minutes.
        options={"size": 192, "iterations": 40, "fallback_vgg19": True},
        description="the seed notebook's Table/Figure 1: two photos × two paintings and a photograph as style × "
                    "the seed's three style-layer sets (seed-conv1 = Gatys'), on VGG16 (content block2_conv2)",
    ),
}


def vgg16_available() -> bool:
    """Whether default VGG16 weights are on this machine (the torch hub or Keras cache)."""
    try:
        from restyle.weights import keras, torchvision

        return torchvision.cached_path("vgg16").is_file() or keras.cached_path("vgg16").is_file()
    except Exception:  # noqa: BLE001 - an odd cache is "not available"
        return False


# ---------------------------------------------------------------------------------------------
# The grid

#: Config fields that say how a cell runs, not what it computes; a saved run matches without them.
IGNORED_FOR_MATCH = ("device", "preset")
#: Columns of metrics.csv describing each cell (swept fields not among them are added).
PARAM_COLUMNS = ("model", "size", "iterations", "optimizer", "init", "pooling", "content_weight", "style_weight",
                 "tv_weight", "seed")


@dataclass
class Cell:
    """One run of a study."""

    name: str  # file stem under DIR/cells
    content: str
    style: str
    layer_set: str  # a LAYER_SETS name or a short label of a custom list
    sweep: dict[str, Any]  # the swept fields' values for this cell
    config: Config
    content_label: str = ""
    style_label: str = ""

    @property
    def group(self) -> str:
        return f"{self.content_label}__{self.style_label}"

    @property
    def variant(self) -> str:
        """The column label: layer set plus swept values."""
        return " ".join([self.layer_set, *(f"{k}={format_value(v)}" for k, v in self.sweep.items())])


def _config_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def parse_value(key: str, text: str) -> Any:
    """A sweep value parsed by the type of Config field ``key``."""
    hint = _config_types()[key]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    nullable = type(None) in args
    base = next(a for a in args if a is not type(None))
    raw = text.strip()
    if nullable and raw.lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(base)
    try:
        if base is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            number = float(raw)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if base is float:
            return float(raw)
        if base is str:
            return raw
        if origin is list:
            (item,) = typing.get_args(base) or (str,)
            items = [x.strip() for x in raw.split(",") if x.strip()]
            if item is int:
                return [int(x) for x in items]
            return [float(x) for x in items] if item is float else items
        if origin is dict:
            return parse_layers(raw)
    except (ValueError, ConfigError):
        pass
    else:
        raise ConfigError(f"--sweep {key}: fields of type {hint} cannot be swept")
    kind = getattr(base, "__name__", str(base)) if origin is None else str(base)
    raise ConfigError(f"--sweep {key}: '{text}' is not a valid {kind}{' (or none)' if nullable else ''}")


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``"style_weight=10,100"`` -> ``("style_weight", [10.0, 100.0])``. Values are split on ``,``
    or, when the text holds a ``;``, on ``;`` (for list and layer values: ``"content_layers=a,b;c"``)."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    fields = [f.name for f in dataclasses.fields(Config)]
    if not sep or not key:
        raise ConfigError(f"--sweep '{text}': write KEY=V1,V2,... (e.g. style_weight=10,100)")
    if key not in fields:
        raise ConfigError(f"--sweep: unknown option '{key}'; choose one of: {', '.join(fields)}")
    if key == "preset":
        raise ConfigError("--sweep preset is not supported: presets set the layers; use --layer-sets and --sweep model=...")
    if key == "style_layers":
        raise ConfigError("--sweep style_layers: use --layer-sets SET|L1,L2,... to vary the style layers")
    hint = _config_types()[key]
    compound = any(typing.get_origin(a) in (list, dict) for a in (typing.get_args(hint) or (hint,)))
    parts = values.split(";") if (";" in values or compound) else values.split(",")
    parts = [p for p in parts if p.strip()]
    if not parts:
        raise ConfigError(f"--sweep '{text}': no values")
    parsed = [parse_value(key, p) for p in parts]
    return key, parsed


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return layer_label(value)
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, str) and ("/" in value or os.sep in value):
        return Path(value).name  # an image path (init, masks): its file name
    return str(value)


def layer_label(layers: Mapping[str, float]) -> str:
    """A LAYER_SETS name when ``layers`` is one, else a short label: ``b1c1-b3c2x0.5-p2``."""
    for name, names in LAYER_SETS.items():
        if dict(layers) == {n: 1.0 for n in names}:
            return name
    parts = []
    for n, w in layers.items():
        short = re.sub(r"block(\d+)_conv(\d+)", r"b\1c\2", n).replace("pool", "p")
        parts.append(short if w == 1.0 else f"{short}x{w:g}")
    return "-".join(parts)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def _labels(paths: Sequence[str]) -> list[str]:
    """Readable, distinct labels (file stems; numbered where two stems are equal)."""
    stems = [_slug(Path(p).stem) for p in paths]
    out = []
    for i, s in enumerate(stems):
        out.append(s if stems.count(s) == 1 else f"{s}-{stems[:i + 1].count(s)}")
    return out


def _layer_set(spec: str) -> tuple[str, dict[str, float]]:
    spec = spec.strip()
    if spec in LAYER_SETS:
        return spec, parse_layers(spec)
    layers = parse_layers(spec)
    return layer_label(layers), layers


def build_grid(
    contents: Sequence[str],
    styles: Sequence[str],
    layer_sets: Sequence[str] | None = None,
    sweeps: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    preset: str | None = None,
) -> list[Cell]:
    """The cells of a study, content-major: content × style × layer set × swept values (in order).

    ``layer_sets``: LAYER_SETS names or ``"l1,l2:w,..."`` lists (None: the configured style layers).
    ``sweeps``: ``{field: [values]}`` or ``["field=v1,v2", ...]``. ``options``: Config fields for
    every cell over the run ``preset`` (a restyle.config.PRESETS name). Every cell's Config is
    built (and so validated) here, before anything runs.
    """
    options = dict(options or {})
    if not contents:
        raise ConfigError("give at least one content image (restyle study CONTENT... --styles STYLE... -o DIR)")
    if not styles:
        raise ConfigError("give at least one style image (--styles STYLE...)")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of: {', '.join([*PRESETS, *STUDY_PRESETS])}")
    if isinstance(sweeps, Mapping):
        sweep_items = [(k.replace("-", "_"), list(v)) for k, v in sweeps.items()]
    else:
        sweep_items = [parse_sweep(s) for s in (sweeps or [])]
    keys = [k for k, _ in sweep_items]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ConfigError(f"--sweep {', '.join(duplicated)} given more than once; list all values in one --sweep")
    fields = {f.name for f in dataclasses.fields(Config)}
    for k, values in sweep_items:
        if k not in fields:
            raise ConfigError(f"--sweep: unknown option '{k}'; choose one of: {', '.join(sorted(fields))}")
        if not values:
            raise ConfigError(f"--sweep {k}: no values")
    if layer_sets:
        if "style_layers" in options:
            raise ConfigError("give either --style-layers or --layer-sets, not both")
        sets = [_layer_set(s) for s in layer_sets]
    else:
        base = Config.from_options(preset=preset, **options)
        sets = [(layer_label(base.style_layers), dict(base.style_layers))]
    for i, (label, layers) in enumerate(sets):
        for other, other_layers in sets[:i]:
            if layers == other_layers:
                same = "" if label == other else f" ('{label}' and '{other}' are the same layers)"
                raise ConfigError(f"--layer-sets lists a set twice{same}; each set is one column, give it once")

    content_labels, style_labels = _labels(contents), _labels(styles)
    cells: list[Cell] = []
    names: set[str] = set()
    combos = list(itertools.product(*[values for _, values in sweep_items])) if sweep_items else [()]
    for (content, c_label), (style, s_label), (set_label, layers), combo in itertools.product(
            zip(contents, content_labels), zip(styles, style_labels), sets, combos):
        sweep = dict(zip(keys, combo))
        config = Config.from_options(preset=preset, **{**options, "style_layers": layers, **sweep})
        name = "__".join([c_label, s_label, _slug(set_label), *(_slug(f"{k}-{format_value(v)}") for k, v in sweep.items())])
        base_name, n = name, 1
        while name in names:
            n += 1
            name = f"{base_name}-{n}"
        names.add(name)
        cells.append(Cell(name, str(content), str(style), set_label, sweep, config, c_label, s_label))
    return cells


def preset_grid(name: str, options: Mapping[str, Any] | None = None, *, contents: Sequence[str] | None = None,
                styles: Sequence[str] | None = None, layer_sets: Sequence[str] | None = None,
                sweeps: Any = None) -> list[Cell]:
    """The grid of a study preset; ``options`` (and explicit contents/styles/layer sets) override its own."""
    p = STUDY_PRESETS[name]
    opts = {**p.options, **(options or {})}
    return build_grid(list(contents or [example(c) for c in p.contents]), list(styles or [example(s) for s in p.styles]),
                      list(layer_sets or p.layer_sets), sweeps, opts, preset=p.run_preset)


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
    from restyle.outputs import file_digest, read_run_record, side_paths

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


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class CellResult:
    cell: Cell
    status: str  # "ran", "skipped" (finished earlier) or "failed"
    png: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    model_used: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""
    stopped_early: str | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


@dataclass
class StudySummary:
    out_dir: Path
    results: list[CellResult]
    seconds: float
    files: dict[str, Path]
    notes: list[str]

    @property
    def failed(self) -> list[CellResult]:
        return [r for r in self.results if r.status == "failed"]


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
    from restyle.outputs import save_result

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
    from restyle.outputs import side_paths

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
    from restyle import metrics, report

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


def metrics_rows(results: Sequence[CellResult], out_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    from restyle.metrics import METRIC_NAMES

    swept = []
    for r in results:
        swept += [k for k in r.cell.sweep if k not in swept and k not in PARAM_COLUMNS]
    columns = ["cell", "content", "style", "style_kind", "layer_set", "style_layers", "content_layers", *swept,
               *PARAM_COLUMNS, "model_used", *METRIC_NAMES, "final_loss", "final_content", "final_style", "final_tv",
               "iterations_done", "seconds", "status", "output", "error"]
    rows = []
    for r in results:
        c = r.cell.config
        row: dict[str, Any] = {
            "cell": r.cell.name, "content": r.cell.content, "style": r.cell.style,
            "style_kind": EXAMPLE_KINDS.get(Path(r.cell.style).stem, ""), "layer_set": r.cell.layer_set,
            "style_layers": format_layers(c.style_layers), "content_layers": format_layers(c.content_layers),
        }
        for k in [*swept, *PARAM_COLUMNS]:
            row[k] = _csv_value(getattr(c, k))
        row["model_used"] = r.model_used
        for k in METRIC_NAMES:
            row[k] = f"{r.metrics[k]:.6g}" if k in r.metrics else ""
        f = r.final
        row.update({"final_loss": _num(f.get("total")), "final_content": _num(f.get("content")),
                    "final_style": _num(f.get("style")), "final_tv": _num(f.get("tv")),
                    "iterations_done": int(f["iteration"]) if f else "", "seconds": _num(f.get("seconds"), ".2f"),
                    "status": r.status, "output": r.png.relative_to(out_dir).as_posix() if r.png else "",
                    "error": r.error})
        rows.append(row)
    return columns, rows


def format_layers(layers: Mapping[str, float]) -> str:
    return ",".join(n if w == 1.0 else f"{n}:{w:g}" for n, w in layers.items())


def _csv_value(v: Any) -> str:
    if isinstance(v, dict):
        return format_layers(v)
    return format_value(v) if v is not None else ""


def _num(v: float | None, spec: str = ".6g") -> str:
    return "" if v is None else format(v, spec)


def write_metrics_csv(results: Sequence[CellResult], out_dir: Path) -> Path:
    from restyle.images import atomic_write_text

    columns, rows = metrics_rows(results, out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


# ---------------------------------------------------------------------------------------------
# CLI

EPILOG = """\
examples:
  restyle study --preset seed-table -o seedtable            # the seed's Table/Figure 1 on the bundled images
  restyle study photo.jpg --styles a.jpg b.jpg --layer-sets gatys seed "block1_conv1,block3_conv1:2" -o out
  restyle study photo.jpg --styles a.jpg --sweep style_weight=10,100,1000 --sweep pooling=max,avg -o out
  restyle study photo.jpg --styles a.jpg --sweep "content_layers=block4_conv2;block2_conv2" -o out
  restyle study ... --jobs 2                                 # two processes (CPU threads split between them)
  restyle study ... --devices cuda:0,cuda:1                  # cells round-robin over two GPUs

--sweep takes any run option (KEY=V1,V2,..; values parsed by the option's type, 'none' for unset;
split on ';' instead of ',' for list values). Rerunning into the same DIR skips finished cells.
"""


def add_parser(subparsers) -> None:
    from restyle.cli import add_run_options

    p = subparsers.add_parser(
        "study", help="run a grid of style transfers and write a report (PNGs, contact sheet, metrics, HTML)",
        description="Run CONTENT × --styles × --layer-sets × each --sweep, score every output with the fixed "
                    "evaluator, and write DIR/index.html, contact_sheet.png, metrics.csv, curves/ and cells/.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("contents", nargs="*", metavar="CONTENT", help="content image(s)")
    p.add_argument("--styles", nargs="+", metavar="STYLE", help="style image(s); each is a row of the grid")
    p.add_argument("--layer-sets", nargs="+", metavar="SET|L1,L2",
                   help=f"style-layer sets to compare: names ({', '.join(LAYER_SETS)}) or layer lists")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="vary a run option over these values (repeatable; the grid is the product)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="study directory (created; reused to resume)")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="cells run in N processes (default 1, or one per --devices)")
    p.add_argument("--devices", metavar="DEV,DEV", help="round-robin cells over these devices, e.g. cuda:0,cuda:1")
    p.add_argument("--threads", type=int, metavar="T",
                   help="torch threads per process (default CPUs // jobs; on a machine shared with other jobs, "
                        "1 is often several times faster)")
    p.add_argument("--force", action="store_true", help="rerun every cell, even finished ones")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-cell progress lines")
    add_run_options(p)
    for action in p._actions:  # --preset also takes the study presets
        if action.dest == "preset":
            action.choices = [*PRESETS, *STUDY_PRESETS]
            action.help = (f"a run preset for every cell ({', '.join(PRESETS)}) or a study preset "
                           f"({', '.join(STUDY_PRESETS)}: {STUDY_PRESETS['seed-table'].description})")
    p.set_defaults(handler=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    from restyle.cli import run_options

    options = run_options(args)
    if args.preset in STUDY_PRESETS:
        cells = preset_grid(args.preset, options, contents=args.contents or None, styles=args.styles,
                            layer_sets=args.layer_sets, sweeps=args.sweep)
        title = f"restyle study: {args.preset}"
    else:
        if not args.contents or not args.styles:
            raise ConfigError("give CONTENT image(s) and --styles STYLE... (or --preset seed-table)")
        cells = build_grid(args.contents, args.styles, args.layer_sets, args.sweep, options, preset=args.preset)
        title = "restyle study"
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    jobs = args.jobs if args.jobs is not None else max(1, len(devices))
    say = (lambda s: None) if args.quiet else (lambda s: print(f"restyle: {s}", file=sys.stderr, flush=True))
    say(f"study of {len(cells)} cells into {args.output}")
    command = "restyle " + " ".join(_quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["study"] else ""
    summary = run_study(cells, args.output, jobs=jobs, devices=devices, threads=args.threads, force=args.force,
                        progress=say,
                        title=title, command=command)
    ran = sum(r.status == "ran" for r in summary.results)
    say(f"{ran} ran, {len(cells) - ran - len(summary.failed)} skipped, {len(summary.failed)} failed "
        f"in {summary.seconds:.0f} s; open {summary.files['html']}")
    if summary.failed:
        notice(f"{len(summary.failed)} cell(s) failed; see {summary.files['html']}")
        return 1
    return 0


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
