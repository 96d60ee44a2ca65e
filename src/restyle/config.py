"""The typed run configuration behind the CLI, the Python API and the PNG's saved config.

Each :class:`Config` field carries its user-facing description (an :class:`Option` in the
field's metadata): help text, command-line flag(s), help group, metavar and choices. The CLI's
run options are generated from it (``restyle.cli.options``), and :func:`parse_field` is the one
parser of the text a user types for a field (command line, ``--sweep``, a form).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

from restyle.errors import ConfigError
from restyle.spec import (
    ARCHS,
    DEFAULT_MAX_PIXELS,
    GATYS_CONTENT,
    GATYS_STYLE,
    LAYER_SETS,
    PRESETS,
    canonical_layer,
)

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")  # or a path to an image file
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
POOLINGS = ("max", "avg")
COLOR_MODES = ("luminance", "histogram")  # --preserve-color
#: ``--photo``'s weight for the matting term Σ_c V_cᵀ L V_c / N (see docs/controls.md for how it was chosen).
DEFAULT_PHOTO_WEIGHT = 1e5
#: The help groups of the run options, in the order ``--help`` shows them.
GROUPS = ("image", "model", "losses", "optimisation", "artistic controls (docs/controls.md)")


def parse_layers(spec: str | Iterable[str] | Mapping[str, float] | None) -> dict[str, float]:
    """``"a,b:2"`` / ``["a", "b:2"]`` / ``{"a": 1, "b": 2}`` / a layer-set name -> ``{"a": 1.0, "b": 2.0}``."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return {str(k): float(v) for k, v in spec.items()}
    if isinstance(spec, str):
        if spec.strip() in LAYER_SETS:
            spec = LAYER_SETS[spec.strip()]
        else:
            spec = [s for s in spec.split(",") if s.strip()]
    out: dict[str, float] = {}
    for item in spec:
        name, _, weight = str(item).partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"layer weight in '{item}' is not a number (write name:weight, e.g. block1_conv1:0.5)") from None
    if not out:
        raise ConfigError("empty layer list")
    return out


@dataclass(frozen=True)
class Option:
    """How a Config field appears to users: the metadata ``option()`` stores on each field."""

    help: str
    flags: tuple[str, ...] = ()  # command-line flags, the long one first
    group: str = ""  # one of GROUPS
    metavar: str | None = None
    choices: tuple[str, ...] | None = None  # the valid values (the field validates them too)
    shown: str | None = None  # the default as --help shows it; None: the field's default; "": not shown
    repeat: bool = False  # a list field given one item per flag (--mask A --mask B)
    shortcut: tuple[str, Any, str] | None = None  # (flag, value, help): a flag that sets a fixed value
    internal: str | None = None  # why the field is not a run option (None: it is one)


def option(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, help: str,
           flag: str | Sequence[str] = (), group: str = "", metavar: str | None = None,
           choices: Iterable[str] | None = None, shown: str | None = None, repeat: bool = False,
           shortcut: tuple[str, Any, str] | None = None, internal: str | None = None) -> Any:
    """A dataclass field whose metadata is the :class:`Option` made of the keyword arguments."""
    if group and group not in GROUPS:
        raise ValueError(f"unknown option group '{group}'")
    meta = {"option": Option(help, (flag,) if isinstance(flag, str) else tuple(flag), group, metavar,
                             tuple(choices) if choices is not None else None, shown, repeat, shortcut, internal)}
    return dataclasses.field(default=default, default_factory=factory or MISSING, metadata=meta)


@dataclass
class Config:
    """Everything that determines a run's output (together with the input images)."""

    # Images
    size: int | None = option(512, flag="--size", group="image", metavar="PX",
                              help="longest side of the output in pixels; none keeps the content image's size")
    style_scale: float = option(1.0, flag="--style-scale", group="image",
                                help="style images are resized to size x this (longest side)")
    style_blend: list[float] | None = option(None, flag="--style-blend", group="image", metavar="W1,W2,..",
                                             shown="equal", help="one weight per style image")
    max_pixels: int | None = option(DEFAULT_MAX_PIXELS, flag="--max-pixels", group="image", metavar="N",
                                    help="refuse input images with more pixels (decompression bombs); none: no cap")
    # Backbone
    model: str = option("vgg19", flag="--model", group="model", choices=ARCHS, help="backbone")
    weights: str | None = option(None, flag="--weights", group="model", metavar="PATH|download|embedded",
                                 shown="embedded VGG19, no download", help="ImageNet weights: a torchvision .pth or "
                                 "Keras .h5 file; 'download' fetches torchvision's into the torch hub cache")
    pooling: str = option("max", flag="--pooling", group="model", choices=POOLINGS, help="pooling layers")
    fallback_vgg19: bool = option(False, flag="--fallback-vgg19", group="model",
                                  help="when VGG16 weights are unavailable, run the same layers on the embedded VGG19")
    # Losses
    content_layers: dict[str, float] = option(
        factory=lambda: parse_layers(GATYS_CONTENT), flag="--content-layers", group="losses", metavar="L[:W],..",
        help="content layers with optional weights")
    style_layers: dict[str, float] = option(
        factory=lambda: parse_layers(GATYS_STYLE), flag="--style-layers", group="losses", metavar="L[:W],..|SET",
        shown="gatys", help=f"style layers with optional weights, or a set name ({', '.join(LAYER_SETS)})")
    content_weight: float = option(1.0, flag="--content-weight", group="losses", help="weight of the content loss")
    style_weight: float = option(50.0, flag="--style-weight", group="losses", help="weight of the style loss")
    tv_weight: float = option(1.0, flag="--tv-weight", group="losses", help="total-variation weight")
    # Optimisation
    optimizer: str = option("lbfgs", flag="--optimizer", group="optimisation", choices=OPTIMIZERS, help="optimiser")
    iterations: int = option(300, flag=("--iterations", "-n"), group="optimisation", metavar="N",
                             help="optimiser iterations")
    lr: float | None = option(None, flag="--lr", group="optimisation", shown="1 for L-BFGS, 0.02 for Adam",
                              help="step size")
    line_search: bool = option(False, flag="--line-search", group="optimisation",
                               help="strong-Wolfe line search (L-BFGS)")
    init: str = option("content", flag="--init", group="image", metavar="content|noise|PATH",
                       help="start from the content image, noise, or an image file")
    seed: int = option(0, flag="--seed", group="optimisation", help="random seed: same seed, same image on CPU")
    # Artistic controls (Gatys et al. 2017, Luan et al. 2017; docs/controls.md)
    preserve_color: str | None = option(None, flag="--preserve-color", group=GROUPS[4], choices=COLOR_MODES,
                                        shown="off", help="keep the content's colours: luminance (transfer on "
                                        "luminance, content chroma kept) or histogram (style images recoloured to the "
                                        "content's colour mean and covariance first)")
    masks: list[str] | None = option(None, flag="--mask", group=GROUPS[4], metavar="MASK", repeat=True, help="one per "
                                     "style image, in order: grayscale image, white = that style applies; pixels no "
                                     "mask covers keep content only (a black mask: that style nowhere)")
    style_masks: list[str] | None = option(None, flag="--style-mask", group=GROUPS[4], metavar="MASK|none", repeat=True,
                                           help="one per style image: the part of it its style comes from (none = all)")
    label_image: str | None = option(None, flag="--label-image", group=GROUPS[4], metavar="LABELS", help="regions by "
                                     "colour: each non-black colour, in reading order, gets the next style image; "
                                     "black regions keep content only")
    photo_weight: float = option(
        0.0, flag="--photo-weight", group=GROUPS[4], metavar="W",
        help="weight of the matting-Laplacian photorealism term (Luan et al. 2017); 0 = off",
        shortcut=("--photo", DEFAULT_PHOTO_WEIGHT, f"photorealism: --photo-weight {DEFAULT_PHOTO_WEIGHT:g} (docs/controls.md)"))
    photo_filter: bool = option(False, flag="--photo-filter", group=GROUPS[4], help="guided-filter the output with "
                                "the content photo as guide (removes leftover texture)")
    scales: list[int] | None = option(None, flag="--scales", group=GROUPS[4], metavar="S1,S2,..", help="coarse-to-fine "
                                      "longest sides, e.g. 512,1024,2048 (the last is the output's; overrides --size); "
                                      "--iterations applies to each")
    multiscale: bool = option(False, flag="--multiscale", group=GROUPS[4], help="coarse-to-fine from --size, halving "
                              "down to >= 256 px (e.g. 2048: 256,512,1024,2048)")
    # Execution
    device: str = option("auto", flag="--device", group="optimisation", metavar="auto|cpu|cuda|cuda:N",
                         shown="auto: CUDA when present", help="where to run")
    precision: str = option("auto", flag="--precision", group="optimisation", choices=PRECISIONS,
                            help="auto: bf16 where the hardware has it natively, else fp32")
    preset: str | None = option(None, flag="--preset", group="model", choices=PRESETS, shown="gatys",
                                help="layers and model of a known setup", internal="recorded for the report; "
                                "--preset sets the other fields (Config.from_options), this one only names it")

    def __post_init__(self) -> None:
        self.content_layers = parse_layers(self.content_layers)
        self.style_layers = parse_layers(self.style_layers)
        self.validate()

    def validate(self) -> None:
        def choice(name: str, value: Any, options: Iterable[str]) -> None:
            if value not in options:
                raise ConfigError(f"unknown {name} '{value}'; choose one of: {', '.join(options)}")

        choice("model", self.model, ARCHS)
        choice("pooling", self.pooling, POOLINGS)
        choice("optimizer", self.optimizer, OPTIMIZERS)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise ConfigError(f"unknown device '{self.device}'; choose auto, cpu, cuda or cuda:N")
        choice("precision", self.precision, PRECISIONS)
        if self.size is not None and self.size < 16:
            raise ConfigError(f"--size {self.size} is too small; use at least 16 (pixels, longest side)")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ConfigError(f"--max-pixels must be >= 1 (or none: no cap), got {self.max_pixels}")
        if self.iterations < 0:
            raise ConfigError("--iterations must be >= 0")
        if not self.style_scale > 0:
            raise ConfigError("--style-scale must be > 0")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not (value >= 0 and value < float("inf")):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if self.lr is not None and not (0 < self.lr < float("inf")):
            raise ConfigError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.style_blend is not None and any(not (w >= 0) for w in self.style_blend):
            raise ConfigError("--style-blend weights must be >= 0")
        if self.style_blend is not None and sum(self.style_blend) <= 0:
            raise ConfigError("--style-blend weights must not all be 0")
        self._validate_controls()
        self.content_layers = {canonical_layer(self.model, k): v for k, v in self.content_layers.items()}
        self.style_layers = {canonical_layer(self.model, k): v for k, v in self.style_layers.items()}

    def _validate_controls(self) -> None:
        from pathlib import Path

        if self.preserve_color is not None and self.preserve_color not in COLOR_MODES:
            raise ConfigError(f"unknown --preserve-color '{self.preserve_color}'; choose {' or '.join(COLOR_MODES)}")
        if not (self.photo_weight >= 0 and self.photo_weight < float("inf")):
            raise ConfigError(f"--photo-weight must be a finite number >= 0, got {self.photo_weight}")
        if self.masks is not None and self.label_image is not None:
            raise ConfigError("give either --mask (one per style image) or --label-image, not both")
        if (self.masks is not None or self.label_image is not None) and self.style_blend is not None:
            raise ConfigError("--style-blend cannot be combined with --mask/--label-image (each style has its own region)")

        def absolute(p: str) -> str:  # mask paths are recorded absolute, as the inputs are, for --from-image
            return p if p.lower() == "none" else str(Path(p).expanduser().resolve())

        if self.masks is not None:
            if not self.masks or any(str(m).lower() == "none" for m in self.masks):
                raise ConfigError("--mask takes one image per style image (a black mask: that style nowhere)")
            self.masks = [absolute(str(m)) for m in self.masks]
        if self.style_masks is not None:
            self.style_masks = [absolute(str(m)) for m in self.style_masks]
        if self.label_image is not None:
            self.label_image = absolute(str(self.label_image))
        if self.scales is not None:
            try:
                scales = [int(s) for s in self.scales if float(s) == int(s)]
            except (TypeError, ValueError):
                scales = []
            if len(scales) != len(self.scales) or not scales:
                raise ConfigError(f"--scales takes whole numbers of pixels, e.g. 512,1024,2048; got {self.scales}")
            if any(s < 16 for s in scales) or any(b <= a for a, b in zip(scales, scales[1:])):
                raise ConfigError(f"--scales must increase (coarse to fine), each at least 16 px; got {scales}")
            self.scales = scales

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_options(cls, preset: str | None = None, **options: Any) -> Config:
        """Build from keyword options, a preset's values applying first (explicit options win).
        An option that is None counts as not given (the API's keyword defaults)."""
        return cls.from_values({k: v for k, v in options.items() if v is not None}, preset=preset)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], preset: str | None = None) -> Config:
        """Build from field values over ``preset``'s; unlike :meth:`from_options`, None is a value
        (``size=None``: the content image's size), as when a user types ``none``."""
        merged: dict[str, Any] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
            merged.update(PRESETS[preset])
            merged["preset"] = preset
        unknown = sorted(set(values) - set(_fields()))
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        merged.update(values)
        return cls(**merged)

    @classmethod
    def from_text(cls, texts: Mapping[str, str], preset: str | None = None) -> Config:
        """Build from the text a user typed per field (``{"size": "256", "style-layers": "seed"}``),
        each parsed by :func:`parse_field`; a ``preset`` key names the preset."""
        texts = dict(texts)
        preset = texts.pop("preset", None) or preset
        return cls.from_values({_field_name(k): parse_field(k, v) for k, v in texts.items()}, preset=preset)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        known = _fields()
        return cls(**{k: v for k, v in data.items() if k in known})


# ---- the fields' metadata and text ----------------------------------------------------------------


@functools.cache
def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(Config)}


@functools.cache
def options() -> dict[str, Option]:
    """Every Config field's :class:`Option`, in field order."""
    return {name: f.metadata["option"] for name, f in _fields().items()}


def run_fields() -> list[str]:
    """The fields users set as run options (all but the internal ones), in field order."""
    return [name for name, opt in options().items() if opt.internal is None]


def shown_default(name: str) -> str | None:
    """The default of field ``name`` as help shows it (None: nothing to show, e.g. a flag that is off)."""
    name = _field_name(name)
    opt = options()[name]
    if opt.shown is not None:
        return opt.shown or None
    f = _fields()[name]
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return ",".join(k if w == 1.0 else f"{k}:{w:g}" for k, w in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def _field_name(name: str) -> str:
    key = name.strip().lstrip("-").replace("-", "_")
    if key not in _fields():
        raise ConfigError(f"unknown option '{name}'; choose one of: {', '.join(run_fields())}")
    return key


@functools.cache
def _type_of(name: str) -> tuple[Any, bool]:
    """(the field's type without None, whether None is allowed)."""
    hint = typing.get_type_hints(Config)[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return next(a for a in args if a is not type(None)), type(None) in args


def value_kind(name: str) -> str:
    """What field ``name`` holds: "bool", "int", "float", "str", "list" (of items) or "layers" (a layer dict)."""
    base, _ = _type_of(_field_name(name))
    origin = typing.get_origin(base)
    return "layers" if origin is dict else "list" if origin is list else base.__name__


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_KINDS = {"bool": "bool (true/false, yes/no, on/off, 1/0)", "layers": "layer list (L[:W],.. or a set name)"}


def _scalar(kind: Any, raw: str) -> Any:
    if kind is bool:
        if raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise ValueError(raw)
    if kind is int:
        number = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)  # 1e3 is a whole number too
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(raw)
        return int(number)
    return float(raw) if kind is float else raw


def parse_field(name: str, text: str, *, label: str | None = None, item: bool = False) -> Any:
    """The value of Config field ``name`` (``"style_weight"``, ``"--style-weight"``) that ``text`` means, by the
    field's type: ``true``/``false`` (yes/no, on/off, 1/0), numbers (an int may be written 1e3), comma-separated
    lists, layer lists (``block1_conv1:2,block3_conv1`` or a set name), ``none`` for fields that may be None.
    ``item``: one item of a list field (a repeatable flag's value). Bad text: a one-line ConfigError naming ``label``
    (default: the field's flag) and the text."""
    key = _field_name(name)
    opt = options()[key]
    if opt.internal is not None:
        raise ConfigError(f"'{key}' is not a run option ({opt.internal})")
    label = label or opt.flags[0]
    base, nullable = _type_of(key)
    raw = text.strip()
    if nullable and not item and raw.lower() in ("none", "null"):
        return None
    origin = typing.get_origin(base)
    of = typing.get_args(base)[0] if origin is list else None
    value: Any
    try:
        if origin is dict:
            value = parse_layers(raw)
        elif of is not None and item:
            value = _scalar(of, raw)
        elif of is not None:
            items = [x.strip() for x in raw.split(",") if x.strip()]
            if not items:
                raise ValueError(raw)
            value = [_scalar(of, x) for x in items]
        else:
            value = _scalar(base, raw)
    except ConfigError as err:
        raise ConfigError(f"{label}: {err}") from None
    except ValueError:
        kind = (of.__name__ if item else f"comma-separated list of {of.__name__}s") if of else _KINDS.get(
            value_kind(key), value_kind(key))
        raise ConfigError(f"{label}: '{text}' is not a valid {kind}{' (or none)' if nullable else ''}") from None
    if opt.choices is not None and value not in opt.choices:
        raise ConfigError(f"{label}: unknown value '{raw}'; choose one of: "
                          f"{', '.join([*opt.choices, *(['none'] if nullable else [])])}")
    return value
