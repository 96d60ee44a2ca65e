"""The typed run configuration behind the CLI, the Python API and the PNG's saved config."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from restyle.errors import ConfigError
from restyle.spec import (
    ARCHS,
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
COLOR_MODES = ("luminance", "histogram")  # --preserve-color
#: ``--photo``'s weight for the matting term Σ_c V_cᵀ L V_c / N (see docs/controls.md for how it was chosen).
DEFAULT_PHOTO_WEIGHT = 1e5


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


@dataclass
class Config:
    """Everything that determines a run's output (together with the input images)."""

    # Images
    size: int | None = 512  # longest side of the output; None keeps the content image's size
    style_scale: float = 1.0  # style images are resized to size * style_scale (longest side)
    style_blend: list[float] | None = None  # one weight per style image; None = equal
    max_pixels: int | None = 178_956_970  # refuse inputs larger than this (decompression bombs)
    # Backbone
    model: str = "vgg19"
    weights: str | None = None  # None = default source for the model (embedded VGG19)
    pooling: str = "max"
    fallback_vgg19: bool = False  # use the embedded VGG19 when VGG16 weights are unavailable
    # Losses
    content_layers: dict[str, float] = field(default_factory=lambda: parse_layers(GATYS_CONTENT))
    style_layers: dict[str, float] = field(default_factory=lambda: parse_layers(GATYS_STYLE))
    content_weight: float = 1.0
    style_weight: float = 50.0
    tv_weight: float = 1.0
    # Optimisation
    optimizer: str = "lbfgs"
    iterations: int = 300
    lr: float | None = None  # None: 1.0 for L-BFGS, 0.02 for Adam
    line_search: bool = False  # strong-Wolfe line search for L-BFGS
    init: str = "content"  # content | noise | path to an image
    seed: int = 0
    # Artistic controls (Gatys et al. 2017, Luan et al. 2017; docs/controls.md)
    preserve_color: str | None = None  # luminance | histogram | None (off)
    masks: list[str] | None = None  # one grayscale mask per style image (white = it applies); uncovered = content only
    style_masks: list[str] | None = None  # per style image, the part of it the style comes from ("none" = all of it)
    label_image: str | None = None  # regions by colour: non-black colours -> style images in reading order
    photo_weight: float = 0.0  # matting-Laplacian photorealism term (Luan et al.); 0 = off
    photo_filter: bool = False  # guided-filter the output with the content photo as guide
    scales: list[int] | None = None  # coarse-to-fine longest sides; the last is the output's (overrides size)
    multiscale: bool = False  # coarse-to-fine from size, halving down to >= 256 px
    # Execution
    device: str = "auto"
    precision: str = "auto"
    preset: str | None = None  # recorded for the report; already applied to the fields

    def __post_init__(self) -> None:
        self.content_layers = parse_layers(self.content_layers)
        self.style_layers = parse_layers(self.style_layers)
        self.validate()

    def validate(self) -> None:
        def choice(name: str, value: Any, options: Iterable[str]) -> None:
            if value not in options:
                raise ConfigError(f"unknown {name} '{value}'; choose one of: {', '.join(options)}")

        choice("model", self.model, ARCHS)
        choice("pooling", self.pooling, ("max", "avg"))
        choice("optimizer", self.optimizer, OPTIMIZERS)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise ConfigError(f"unknown device '{self.device}'; choose auto, cpu, cuda or cuda:N")
        choice("precision", self.precision, PRECISIONS)
        if self.size is not None and self.size < 16:
            raise ConfigError(f"--size {self.size} is too small; use at least 16 (pixels, longest side)")
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
    def from_options(cls, preset: str | None = None, **options: Any) -> "Config":
        """Build from keyword options, a preset's values applying first (explicit options win)."""
        values: dict[str, Any] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
            values.update(PRESETS[preset])
            values["preset"] = preset
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        values.update({k: v for k, v in options.items() if v is not None})  # None = "not given"
        return cls(**values)

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
