"""Typed events of a training run, consumed by the CLI's progress bar and by callers of
:func:`restyle.api.train`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class TrainStarted:
    """Photos and paintings are loaded; training begins at ``start`` (non-zero when resumed)."""

    steps: int
    start: int
    photos: int
    held_out: int
    skipped: int  # unreadable files under the photo folder
    styles: tuple[str, ...]
    device: str
    precision: str


@dataclass(frozen=True)
class TrainProgress:
    """One step: its losses (``smoothed``: the running average the checkpoints record)."""

    step: int
    steps: int
    losses: dict[str, float]
    seconds: float
    eta: float


@dataclass(frozen=True)
class TrainSample:
    """A checkpoint was written and a sample sheet of the held-back photos saved at ``path``."""

    step: int
    path: str


@dataclass(frozen=True)
class TrainFinished:
    steps: int
    loss: float
    seconds: float
    path: str


TrainEvent = Union[TrainStarted, TrainProgress, TrainSample, TrainFinished]
