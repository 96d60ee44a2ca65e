"""The :class:`Config` dataclass: every field that determines a run's output, with its option
metadata, validation and (de)serialisation."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from restyle.config.choices import (
    COLOR_MODES,
    DEFAULT_PHOTO_WEIGHT,
    GROUPS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    SAFEGUARDS,
    STYLE_LOSSES,
    is_device,
    option,
    parse_layers,
    strength_to_style_weight,
)
from restyle.config.fields import field_name, parse_field
from restyle.errors import ConfigError
from restyle.spec import (
    ARCHS,
    DEFAULT_MAX_PIXELS,
    GATYS_CONTENT,
    GATYS_STYLE,
    LAYER_SETS,
    PRESETS,
    canonical_layer,
    longest_size,
)


def check_style_blend(blend: Sequence[float] | None, n_styles: int) -> None:
    """Refuse a ``--style-blend`` whose weights are not one per style image (None: equal weights, always fit)."""
    if blend is not None and len(blend) != n_styles:
        raise ConfigError(f"--style-blend has {len(blend)} weight(s) for {n_styles} style image(s)")


#: The smallest --tile: twice the stride of VGG's deepest layers (16), so every tile holds their positions.
MIN_TILE = 32


@dataclass
class Config:
    """Everything that determines a run's output (together with the input images)."""

    # Images
    size: int | None = option(512, flag="--size", group="image", metavar="PX",
                              help="longest side of the output in pixels; none keeps the content image's size")
    style_scale: float = option(1.0, flag="--style-scale", group="image",
                                help="style images are resized to size x this (longest side)")
    style_blend: list[float] | None = option(None, flag=("--style-blend", "--blend"), group="image",
                                             metavar="W1,W2,..", shown="equal", help="one weight per style image "
                                             "(with --fast-model: per style the model holds)")
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
    strength: float | None = option(None, flag="--strength", group="losses", metavar="0..1", shown="off (use "
                                    "--style-weight)", help="how strongly to stylise, one knob: sets the style weight "
                                    "to 50 x 10^(4 (s - 0.5)) (0.5 = the default weight 50; +0.25 = x10); overrides "
                                    "--style-weight")
    style_loss: str = option("gram", flag="--style-loss", group="losses", choices=STYLE_LOSSES, help="style statistics "
                             "matched: gram (Gram matrices, Gatys et al.) or w2 (Wasserstein-2 distance of feature "
                             "means and covariances)")
    tv_weight: float = option(1.0, flag="--tv-weight", group="losses", help="total-variation weight")
    # Optimisation
    optimizer: str = option("lbfgs", flag="--optimizer", group="optimisation", choices=OPTIMIZERS, help="optimiser")
    iterations: int | None = option(None, flag=("--iterations", "-n"), group="optimisation", metavar="N|auto",
                                    shown="auto: each stage stops when its loss stops improving", words={"auto": None},
                                    help="optimiser iterations of the first stage (each finer stage half as many); "
                                    "auto: stop when finished (docs/stopping.md)")
    stop_tolerance: float = option(0.02, flag="--stop-tolerance", group="optimisation", metavar="F",
                                   help="the automatic stop: a one-stage run from the photo ends when 20 steps improve "
                                   "its loss by less than this fraction (0.02 = 2 percent); the other stages' rules "
                                   "(coarse to fine 4.5 and 9 percent, a video frame started from the one before 1.5) "
                                   "scale with it (docs/stopping.md); ignored with -n N")
    time_limit: float | None = option(None, flag="--time-limit", group="optimisation", metavar="SECONDS", shown="off",
                                      words={"off": None},
                                      help="finish each picture (each video frame) after SECONDS with the image it has "
                                      "then, as Finish now does; the automatic stop or -n may end it sooner")
    lr: float | None = option(None, flag="--lr", group="optimisation", shown="1 for L-BFGS, 0.02 for Adam",
                              help="step size")
    line_search: bool = option(False, flag="--line-search", group="optimisation",
                               help="strong-Wolfe line search (L-BFGS)")
    safeguard: str = option("reset", flag="--safeguard", group="optimisation", choices=SAFEGUARDS,
                            help="L-BFGS without --line-search: a step that raises the loss is undone and retried "
                            "shorter with the curvature memory reset (reset), or kept (backtrack), or with the "
                            "step length kept shrunk (adaptive), or the rejected step's curvature used (secant); "
                            "off: the fixed step of earlier releases (docs/quality.md)")
    ema: float = option(0.0, flag="--ema", group="optimisation", metavar="DECAY", help="deliver the exponential "
                        "moving average of the iterates with this decay (e.g. 0.9); 0 = the last iterate")
    init: str = option("content", flag="--init", group="image", metavar="content|noise|PATH", file=True,
                       help="start from the content image, noise, or an image file")
    seed: int = option(0, flag="--seed", group="optimisation", help="random seed: same seed, same image on CPU")
    # Artistic controls (Gatys et al. 2017, Luan et al. 2017; docs/controls.md)
    preserve_color: str | None = option(None, flag="--preserve-color", group=GROUPS[4], choices=COLOR_MODES,
                                        shown="off", help="keep the content's colours: luminance (transfer on "
                                        "luminance, content chroma kept) or histogram (style images recoloured to the "
                                        "content's colour mean and covariance first)")
    masks: list[str] | None = option(None, flag="--mask", file=True, group=GROUPS[4], metavar="MASK", repeat=True, help="one per "
                                     "style image, in order: grayscale image, white = that style applies; pixels no "
                                     "mask covers keep content only (a black mask: that style nowhere)")
    style_masks: list[str] | None = option(None, flag="--style-mask", file=True, group=GROUPS[4], metavar="MASK|none", repeat=True,
                                           help="one per style image: the part of it its style comes from (none = all)")
    label_image: str | None = option(None, flag="--label-image", file=True, group=GROUPS[4], metavar="LABELS", help="regions by "
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
                                      "with -n N the first stage runs N steps, each later one half the one before")
    multiscale: bool = option(True, flag="--multiscale", group=GROUPS[4], help="coarse-to-fine from --size, halving "
                              "down to >= 256 px (e.g. 2048: 256,512,1024,2048; sizes under 512 have one stage), each "
                              "stage stopping when finished (with -n N: the first stage running N steps and each later "
                              "one half as many); --no-multiscale: one stage at --size (docs/quality.md)")
    lead_stage: bool = option(False, flag="--lead-stage", group=GROUPS[4], help="with the automatic stop, an output "
                              "of 192-511 px is painted first at half its pixels with the deep style layers (block4-5) at "
                              "0.15x their weight: about 0.37 of -n 300's cost at 256 px against 0.61-0.64, a few styles "
                              "further from today's (docs/stopping.md)")
    pyramid: bool = option(False, flag="--pyramid", group=GROUPS[4], help="with the automatic stop, a run from the "
                           "photo steps its first stage's image as a pyramid (coarse structure first): about 0.53 of "
                           "-n 300's steps at 256 px against 0.63, with a softer look, fewer fine strokes "
                           "(docs/stopping.md)")
    # Execution
    device: str = option("auto", flag="--device", group="optimisation", metavar="auto|cpu|cuda|cuda:N",
                         shown="auto: CUDA when present", help="where to run")
    precision: str = option("auto", flag="--precision", group="optimisation", choices=PRECISIONS,
                            help="auto: bf16 where the hardware has it natively, else fp32")
    # Memory (docs/large.md)
    tile: int | None = option(None, flag="--tile", group="optimisation", metavar="PX", shown="off", words={"off": None},
                              help="evaluate the objective in tiles of PX x PX pixels (each with a halo), with exact "
                              "global style statistics: memory bounded by the tile, not the image; stages no larger "
                              "than PX run untiled (docs/large.md)")
    max_memory: float | str | None = option(
        "auto", flag="--max-memory", group="optimisation", metavar="GB|auto|none", words={"auto": "auto"},
        shown="auto: the memory available, less a 10 percent margin",
        help="tile the stages whose untiled run is estimated to need more than GB (on CUDA: GB less the context's "
        "1.2, or the free memory if less), with the largest tile that fits; a run no tile can fit is refused before "
        "it starts; auto: the RAM available (CUDA: the card's free memory), none: no limit (docs/large.md)")
    # The method (restyle.methods): None runs the one whose own options are set, else the optimiser
    method: str | None = option(None, flag="--method", group="model", metavar="NAME", shown="optimise (fast with "
                                "--fast-model)", help="how to stylise: optimise (Gatys et al.), fast (a trained "
                                "network, --fast-model), universal (any painting in one pass), or an installed "
                                "method's name (restyle.methods entry points)")
    method_options: dict[str, Any] = option(factory=dict, help="options of an installed method, by name",
                                            internal="set from the flags a method declares (restyle.methods)")
    # Fast models (docs/fast.md)
    fast_model: str | None = option(None, flag="--fast-model", group=GROUPS[5], metavar="NAME|PATH", shown="off",
                                    words={"off": None}, file=True,
                                    help="stylise with a trained feed-forward network (restyle train) in milliseconds "
                                    "instead of optimising: a .pt file, or a bundled model or painting's name; its "
                                    "styles replace style images")
    refine: int = option(0, flag="--refine", group=GROUPS[5], metavar="N", help="with --fast-model: then optimise "
                         "the network's output for N iterations towards the model's paintings (0 = off)")
    preset: str | None = option(None, flag="--preset", group="model", choices=PRESETS, shown="gatys",
                                help="layers and model of a known setup", internal="recorded for the report; "
                                "--preset sets the other fields (Config.from_options), this one only names it")

    def __post_init__(self) -> None:
        self.content_layers = parse_layers(self.content_layers)
        self.style_layers = parse_layers(self.style_layers)
        self.validate()

    def output_size(self, content_size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the output (the last stage) for a content image of ``content_size``."""
        longest = self.scales[-1] if self.scales else self.size
        return content_size if longest is None else longest_size(content_size, int(longest))

    def check_request(self, content_size: tuple[int, int]) -> None:
        """Refuse, before any work, a run whose output (or any stage) would pass the pixel cap
        (``--max-pixels``), naming the size, the cap and how to change them. A content image over
        the cap itself is left to the loader, which names the image."""
        if self.max_pixels is None or content_size[0] * content_size[1] > self.max_pixels:
            return
        width, height = self.output_size(content_size)
        if width * height > self.max_pixels:
            asked = f"--scales ...,{self.scales[-1]}" if self.scales else f"--size {self.size}"
            raise ConfigError(f"{asked} makes a {width}x{height} px output ({width * height:,} pixels), over the "
                              f"pixel cap of {self.max_pixels:,}; use a smaller size (or raise --max-pixels)")

    def validate(self) -> None:
        def choice(name: str, value: Any, options: Iterable[str]) -> None:
            if value not in options:
                raise ConfigError(f"unknown {name} '{value}'; choose one of: {', '.join(options)}")

        choice("model", self.model, ARCHS)
        choice("pooling", self.pooling, POOLINGS)
        choice("optimizer", self.optimizer, OPTIMIZERS)
        if not is_device(str(self.device), auto=True):
            raise ConfigError(f"unknown device '{self.device}'; choose auto, cpu, cuda or cuda:N")
        choice("precision", self.precision, PRECISIONS)
        if self.size is not None and self.size < 16:
            raise ConfigError(f"--size {self.size} is too small; use at least 16 (pixels, longest side)")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ConfigError(f"--max-pixels must be >= 1 (or none: no cap), got {self.max_pixels}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed must be a whole number from 0 to 2**63 - 1, got {self.seed}")
        if self.iterations is not None and self.iterations < 0:
            raise ConfigError("--iterations must be >= 0 (or auto)")
        if not (0 < self.stop_tolerance < 1):
            raise ConfigError(f"--stop-tolerance must be between 0 and 1 (a fraction), got {self.stop_tolerance}")
        if self.time_limit is not None and not (0 < self.time_limit < float("inf")):
            raise ConfigError(f"--time-limit must be a positive number of seconds (or none: no limit), got {self.time_limit}")
        if not self.style_scale > 0:
            raise ConfigError("--style-scale must be > 0")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not (value >= 0 and value < float("inf")):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        choice("safeguard", self.safeguard, SAFEGUARDS)
        choice("style loss", self.style_loss, STYLE_LOSSES)
        if self.strength is not None and not (0.0 <= self.strength <= 1.0):
            raise ConfigError(f"--strength must be between 0 and 1, got {self.strength}")
        if not (0.0 <= self.ema < 1.0):
            raise ConfigError(f"--ema must be a decay in [0, 1) (0 = off), got {self.ema}")
        if self.tile is not None and self.tile < MIN_TILE:
            raise ConfigError(f"--tile must be at least {MIN_TILE} (pixels; none = untiled), got {self.tile}")
        if self.max_memory is not None and self.max_memory != "auto" and not (
                isinstance(self.max_memory, (int, float)) and 0 < self.max_memory < float("inf")):
            raise ConfigError(f"--max-memory must be a number of GB > 0, auto or none, got {self.max_memory}")
        if self.lr is not None and not (0 < self.lr < float("inf")):
            raise ConfigError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.style_blend is not None and any(not (w >= 0) for w in self.style_blend):
            raise ConfigError("--style-blend weights must be >= 0")
        if self.style_blend is not None and sum(self.style_blend) <= 0:
            raise ConfigError("--style-blend weights must not all be 0")
        if self.refine < 0 or (self.refine and self.fast_model is None):
            raise ConfigError("--refine N needs --fast-model and N >= 0")
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

    @property
    def effective_style_weight(self) -> float:
        """The style weight a run uses: from ``strength`` when given, else ``style_weight``."""
        return self.style_weight if self.strength is None else strength_to_style_weight(self.strength)

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
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
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
        return cls.from_values({field_name(cls, k): parse_field(cls, k, v) for k, v in texts.items()}, preset=preset)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
