"""The messages between the worker pool and a worker process: small frozen dataclasses, one per
kind, that cross the pipes pickled; each receiver dispatches on their type.

Commands (pool to worker): :class:`RunJob`, :class:`CancelJob`, :class:`FinishJob`, :class:`Stop`.
Events (worker to pool): :class:`Ready` once, then per job :class:`JobStarted`, :class:`JobProgressed`,
:class:`JobPreview`, :class:`JobCheckpoint` and :class:`JobNote`, and at its end one of :class:`JobDone`, :class:`JobFailed`
or :class:`JobCancelled`. Nothing here imports torch or FastAPI (a worker imports this module).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run a job: its folder, its Config's values (less ``device``), the
    paths of its images, how often to save a checkpoint and send a preview, and the files the
    server resolved the config's offered names to (``files``: {option: file})."""

    id: str
    dir: str
    config: dict[str, Any]
    content: str
    styles: tuple[str, ...]
    checkpoint_every: int
    preview_every: int
    max_seconds: float | None = None  # stop the job (failed, its last image kept) after this long
    files: dict[str, str] = field(default_factory=dict)
    finish: bool = False  # finish now was asked for (before a restart): end at the run's first row


@dataclass(frozen=True)
class RunSummary:
    """How a job's run ended (``done.json`` in its folder holds it, as a JSON object)."""

    iterations: int
    seconds: float
    final_loss: float | None = None
    stopped_early: bool = False
    width: int = 0
    height: int = 0
    notes: tuple[str, ...] = ()
    resumed_from: int | None = None
    device: str | None = None
    precision: str | None = None
    stop_reason: str = ""  # the run record's: the rule, the iterations asked for, or "finished on request ..."

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["notes"] = tuple(values.get("notes") or ())
        return cls(**values)


# ---- commands: pool to worker -------------------------------------------------------------------
@dataclass(frozen=True)
class RunJob:
    job: JobSpec


@dataclass(frozen=True)
class CancelJob:
    job_id: str


@dataclass(frozen=True)
class FinishJob:
    """End the running job now with the picture it has reached (done, not cancelled)."""

    job_id: str


@dataclass(frozen=True)
class Stop:
    """Finish the job in hand, then exit."""


Command = Union[RunJob, CancelJob, FinishJob, Stop]


# ---- events: worker to pool ---------------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    pid: int
    device: str


@dataclass(frozen=True)
class JobStarted:
    """The run began: ``event`` is the ``started`` event the pages get (its ``total``, ``stages``,
    ``resumed_from`` and the loss ``curve`` of the attempts before)."""

    job_id: str
    event: dict[str, Any] = field(default_factory=dict)

    @property
    def resumed_from(self) -> int | None:
        value = self.event.get("resumed_from")
        return int(value) if value is not None else None


@dataclass(frozen=True)
class JobProgressed:
    """One iteration: ``progress`` is the ``progress`` event the pages get."""

    job_id: str
    progress: dict[str, Any]


@dataclass(frozen=True)
class JobPreview:
    """A picture to show while the job runs; ``label`` says what it is (the page shows it)."""

    job_id: str
    iteration: int
    jpeg: bytes
    label: str = ""


@dataclass(frozen=True)
class JobCheckpoint:
    """An image was saved in the job's folder at the iteration of ``progress``."""

    job_id: str
    progress: dict[str, Any]


@dataclass(frozen=True)
class JobNote:
    job_id: str
    note: str


@dataclass(frozen=True)
class JobDone:
    job_id: str
    summary: RunSummary


@dataclass(frozen=True)
class JobFailed:
    """The job failed: ``error`` is what its client is told; ``detail``, when given, what the server's
    log keeps besides (the path a full disk refused, say)."""

    job_id: str
    error: str
    detail: str | None = None


@dataclass(frozen=True)
class JobCancelled:
    job_id: str


JobEvent = Union[JobStarted, JobProgressed, JobPreview, JobCheckpoint, JobNote, JobDone, JobFailed, JobCancelled]
WorkerEvent = Union[Ready, JobEvent]
