"""A study's grid: content × style × layer set × swept options, each cell a validated Config;
the study presets (``--preset seed-table``)."""

from __future__ import annotations

import dataclasses
import importlib.resources
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from restyle.config import Config, parse_field, parse_layers, value_kind
from restyle.errors import ConfigError
from restyle.spec import LAYER_SETS, PRESETS

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


# ---------------------------------------------------------------------------------------------
# The grid

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


def parse_value(key: str, text: str) -> Any:
    """A sweep value parsed by the type of Config field ``key`` (:func:`restyle.config.parse_field`, as
    the command line parses it)."""
    return parse_field(key, text, label=f"--sweep {key}")


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
    compound = value_kind(key) in ("list", "layers")
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
        base = Config.from_values(options, preset=preset)
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
        config = Config.from_values({**options, "style_layers": layers, **sweep}, preset=preset)
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
