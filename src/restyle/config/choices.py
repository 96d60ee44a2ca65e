"""Choices, the layer-list parser, and :class:`Option`: the user-facing description a Config
field carries in its metadata (help, flag(s), group, metavar, choices)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

from restyle.errors import ConfigError
from restyle.spec import LAYER_SETS

OPTIMIZERS = ("lbfgs", "adam")
#: --safeguard: how L-BFGS treats a step that raises the loss (restyle.nn.optim.LBFGS; docs/quality.md).
SAFEGUARDS = ("reset", "backtrack", "adaptive", "secant", "off")
#: --style-loss: Gram matrices (Gatys et al.) or the Wasserstein-2 distance of feature means and covariances.
STYLE_LOSSES = ("gram", "w2")
#: --strength s in [0, 1] sets the style weight to STRENGTH_MID_WEIGHT * 10 ** (STRENGTH_DECADES * (s - 0.5)).
STRENGTH_MID_WEIGHT = 50.0
STRENGTH_DECADES = 4.0
INITS = ("content", "noise")  # or a path to an image file
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
POOLINGS = ("max", "avg")
COLOR_MODES = ("luminance", "histogram")  # --preserve-color
#: ``--photo``'s weight for the matting term Σ_c V_cᵀ L V_c / N (see docs/controls.md for how it was chosen).
DEFAULT_PHOTO_WEIGHT = 1e5
#: The help groups of the run options, in the order ``--help`` shows them.
GROUPS = ("image", "model", "losses", "optimisation", "artistic controls (docs/controls.md)",
          "fast models (docs/fast.md)")
#: A device a run names: cpu, cuda or cuda:N (``auto`` is allowed where the tool may choose).
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


def is_device(name: str, *, auto: bool = False) -> bool:
    """Whether ``name`` is a device a run can be told to use: cpu, cuda or cuda:N, or (with ``auto``) auto.
    Only the spelling: whether the GPU is present is checked where the run starts."""
    return (auto and name == "auto") or DEVICE_PATTERN.fullmatch(name) is not None


def strength_to_style_weight(strength: float) -> float:
    """The style weight of ``--strength s``: ``50 · 10^(4·(s − 0.5))``, i.e. 0.5 at s = 0, 5 at
    0.25, the default 50 at 0.5, 500 at 0.75, 5000 at 1 (each quarter a factor of 10)."""
    return STRENGTH_MID_WEIGHT * 10 ** (STRENGTH_DECADES * (float(strength) - 0.5))


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
    words: tuple[tuple[str, Any], ...] = ()  # words the field takes for values besides its type's ("auto")
    file: bool = False  # its value may be a file a run reads (shipped with a task to another process)


def option(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, help: str,
           flag: str | Sequence[str] = (), group: str = "", metavar: str | None = None,
           choices: Iterable[str] | None = None, shown: str | None = None, repeat: bool = False,
           shortcut: tuple[str, Any, str] | None = None, internal: str | None = None,
           words: Mapping[str, Any] | None = None, file: bool = False) -> Any:
    """A dataclass field whose metadata is the :class:`Option` made of the keyword arguments."""
    if group and group not in GROUPS:
        raise ValueError(f"unknown option group '{group}'")
    meta = {"option": Option(help, (flag,) if isinstance(flag, str) else tuple(flag), group, metavar,
                             tuple(choices) if choices is not None else None, shown, repeat, shortcut, internal,
                             tuple((words or {}).items()), file)}
    return dataclasses.field(default=default, default_factory=factory or MISSING, metadata=meta)
