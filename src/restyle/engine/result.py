"""What a run produces (:class:`Result`): the return type of every method (:class:`restyle.methods.Method`),
the engine's and the one-pass methods' alike. Loads no torch: a tensor only in annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from restyle.config import Config

if TYPE_CHECKING:
    import torch


@dataclass
class Result:
    """What a run produces: the image, its per-iteration loss history, and how it was made."""

    image: Any  # PIL.Image.Image
    history: list[dict[str, float]]
    config: Config
    notes: list[str] = field(default_factory=list)
    stopped_early: str | None = None  # why the run stopped before its last iteration, if it failed
    device: str = "cpu"
    precision: str = "fp32"
    written: dict[str, Any] = field(default_factory=dict)  # files written for it (api.stylize with output=)
    #: The output before 8-bit rounding: 1x3xHxW float32 in [0, 1] on the CPU (for 16-bit outputs).
    pixels: torch.Tensor | None = None
    #: Why the run stopped: the automatic stop's rule, or the iterations asked for.
    stop_reason: str = ""

    @property
    def final_loss(self) -> float:
        return self.history[-1]["total"] if self.history else float("nan")
