"""A job as the store keeps it (:class:`JobRecord`, one row of the ``jobs`` table) and the images it
runs on (:class:`JobInputs`); torch-free and FastAPI-free.

The JSON columns (``options``, ``config``, ``inputs``, ``progress``) are decoded into typed fields
when a row is read, and :class:`JobInputs` encodes back to the JSON the table has always held.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL: tuple[JobStatus, ...] = ("done", "failed", "cancelled")


class ImageInput(BaseModel):
    """One image a job runs on: an upload (kept by its SHA-256) or a bundled example (by name)."""

    model_config = ConfigDict(frozen=True)

    name: str
    sha256: str
    bytes: int
    width: int
    height: int
    example: str | None = None


class JobInputs(BaseModel):
    """A job's content image and its style images."""

    model_config = ConfigDict(frozen=True)

    content: ImageInput
    styles: list[ImageInput]

    def images(self) -> list[ImageInput]:
        """The content image, then the style images (the order of ``GET /api/jobs/{id}/inputs/{index}``)."""
        return [self.content, *self.styles]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, text: str) -> JobInputs:
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class JobRecord:
    """One row of the ``jobs`` table, its JSON columns decoded; ``position`` (1 = next to run) is
    set for a queued job read by :meth:`Store.get <restyle.server.store.Store.get>`."""

    seq: int
    id: str
    status: JobStatus
    created: float
    started: float | None
    finished: float | None
    options: dict[str, Any]
    preset: str | None
    config: dict[str, Any]
    inputs: JobInputs
    error: str | None
    attempts: int
    crashes: int
    cancel: bool
    progress: dict[str, Any] | None
    resumed_from: int | None
    device: str | None
    idempotency_key: str | None
    parent: str | None
    position: int | None = None
    finish: bool = False  # finish now was asked for while it ran

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def submission(self) -> dict[str, Any]:
        """What a job's folder keeps of it (``job.json``): the columns a rebuilt queue needs."""
        return {"id": self.id, "created": self.created, "options": self.options, "preset": self.preset,
                "config": self.config, "inputs": self.inputs.model_dump(mode="json"), "parent": self.parent,
                "idempotency_key": self.idempotency_key}

    @classmethod
    def from_row(cls, row: sqlite3.Row, position: int | None = None) -> JobRecord:
        def decoded(key: str) -> Any:
            return json.loads(row[key]) if row[key] is not None else None

        status = row["status"]
        if status not in STATUSES:
            raise ValueError(f"job {row['id']} has an unknown status {status!r}")
        return cls(
            seq=int(row["seq"]), id=str(row["id"]), status=cast(JobStatus, status), created=float(row["created"]),
            started=row["started"], finished=row["finished"], options=decoded("options") or {}, preset=row["preset"],
            config=decoded("config") or {}, inputs=JobInputs.from_json(row["inputs"]), error=row["error"],
            attempts=int(row["attempts"]), crashes=int(row["crashes"]), cancel=bool(row["cancel"]),
            progress=decoded("progress"), resumed_from=row["resumed_from"], device=row["device"],
            idempotency_key=row["idempotency_key"], parent=row["parent"], position=position,
            finish=bool(row["finish"]))
