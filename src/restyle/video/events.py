"""Typed events of a video run, frame by frame (the engine's own events of each frame's run come
between a :class:`FrameStarted` and its :class:`FrameFinished`). Plain frozen dataclasses of
numbers and strings, like :mod:`restyle.engine.events`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoStarted:
    """The input is read and checked; ``done`` of the ``total`` frames were finished by an
    earlier, interrupted run of the same command (kept in ``work_dir``)."""

    total: int
    done: int
    fps: float
    width: int
    height: int
    work_dir: str


@dataclass(frozen=True)
class FrameStarted:
    """Frame ``index`` (0-based, of ``total``) is about to be stylised with ``iterations`` steps
    (None: until the automatic stop)."""

    index: int
    total: int
    iterations: int | None


@dataclass(frozen=True)
class FrameFinished:
    """Frame ``index`` is stylised and saved; ``eta``: seconds left at this session's pace."""

    index: int
    total: int
    seconds: float
    final_loss: float
    eta: float | None


@dataclass(frozen=True)
class VideoFinished:
    """The output is written: ``frames`` frames at ``fps``, video codec ``codec`` (``png`` for a
    folder of frames), audio ``audio`` (``copied``, ``re-encoded as X`` or ``none``)."""

    output: str
    frames: int
    fps: float
    codec: str
    audio: str
    seconds: float


VideoEvent = VideoStarted | FrameStarted | FrameFinished | VideoFinished
