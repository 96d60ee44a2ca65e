"""Typed progress events: the one stream a CLI progress bar, a server's live page and a remote
worker all consume.

Events are plain frozen dataclasses of numbers, strings and (for ``Progress.image``) a
tensor, so they pickle across processes and serialise to JSON with :func:`as_dict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # a tensor only in annotations: the method declarations import this module and load no torch
    import torch


@dataclass(frozen=True)
class Started:
    """The inputs are loaded and the backbone is ready; optimisation is about to begin."""

    total: int  # history rows the run will produce (all coarse-to-fine stages, plus the final loss)
    stages: tuple[int, ...]  # longest side of each stage
    model: str
    device: str
    precision: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """One history row: the losses of the image after ``iteration`` steps (over all stages)."""

    iteration: int
    total: int  # as in Started
    scale: int  # longest side of the current stage
    losses: dict[str, float]  # total, content, style, tv, photo
    seconds: float  # since the run started
    #: The image those losses are of: 1x3xHxW in [0, 1], on the run's device (``.cpu()`` it before
    #: sending it to another process; copying every step to the host would sync a GPU loop).
    image: torch.Tensor | None = None
    #: Seconds left as the engine estimates them (the automatic stop: from the stop rule's
    #: extrapolation and the stages still to come); None: extrapolate from the pace so far.
    remaining: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, (self.iteration + 1) / max(1, self.total))

    @property
    def eta(self) -> float | None:
        """Seconds left: the engine's estimate, else extrapolated from the pace so far (None before
        the first step)."""
        if self.remaining is not None:
            return self.remaining
        if self.iteration <= 0:
            return None
        return self.seconds / (self.iteration + 1) * max(0, self.total - self.iteration - 1)


@dataclass(frozen=True)
class Finished:
    """The run is over: how many iterations, its final loss, why it stopped early if it failed,
    and why it stopped (``reason``: the automatic stop, or the iterations asked for)."""

    iterations: int
    final_loss: float
    seconds: float
    stopped_early: str | None = None
    reason: str = ""


class FinishNow(Exception):  # noqa: N818 - a request, not an error
    """Raise from an event handler on a :class:`Progress` event to end the run now, with that
    event's image as the result: the person watching finds the picture finished. The run ends
    normally (a :class:`Finished` event, the history up to that row, ``reason`` "finished on
    request at iteration N", then ``: why`` when given); a coarser stage's image is upsampled to the
    output size, with the photo's finer detail added where the schedule adds it between stages.
    Raised on another event, it is an ordinary exception."""

    def __init__(self, why: str = ""):
        super().__init__(why)
        self.why = why

    @classmethod
    def at_time_limit(cls, seconds: float) -> FinishNow:
        """The request a time limit of ``seconds`` (``--time-limit``) makes once it has passed."""
        return cls(f"the {seconds:g} s time limit (--time-limit)")


Event = Union[Started, Progress, Finished]
EventHandler = Callable[[Event], None]
#: ``on_iteration(row, image)``: a history row (the losses at one iteration) and the image they are of.
IterationHandler = Callable[[dict[str, float], "torch.Tensor"], None]


def as_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict of ``event`` (``type`` names the event; the image is left out)."""
    d = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "image"}
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
    d["type"] = type(event).__name__.lower()
    if isinstance(event, Progress):
        d["eta"] = event.eta
    return d
