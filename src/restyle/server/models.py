"""The JSON the HTTP API answers with, as Pydantic models (they name the responses in ``/openapi.json``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from restyle.server.records import ImageInput, JobInputs, JobStatus

__all__ = ["FastModelListing", "ImageInput", "Job", "JobCounts", "JobInputs", "JobLinks", "JobList", "JobProgress", "OptionField",
           "RunOptions", "Example", "ServerInfo", "WorkerInfo"]


def _absent(value: Any) -> bool:
    return value is None


class JobProgress(BaseModel):
    """How far a job has got (as its last ``progress`` event said)."""

    iteration: int | None = None
    total: int | None = Field(None, description="iterations in all (the last one is total - 1)")
    fraction: float | None = None
    eta: float | None = Field(None, description="seconds left (estimated)")
    losses: dict[str, float] | None = None
    scale: int | None = Field(None, description="the size of the stage running (coarse to fine)")
    seconds: float | None = None
    stop_reason: str | None = Field(None, exclude_if=_absent,
                                    description="why the run ended, once it is done (the run record's stop_reason)")


class JobLinks(BaseModel):
    """Where a job's parts are; ``result``, ``losses`` and ``thumbnail`` once it is done."""

    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    events: str
    result: str | None = Field(None, exclude_if=_absent)
    losses: str | None = Field(None, exclude_if=_absent)
    thumbnail: str | None = Field(None, exclude_if=_absent)


class Job(BaseModel):
    """A job as clients see it (``GET /api/jobs/{id}``)."""

    id: str
    status: JobStatus
    created: str = Field(description="ISO 8601, UTC")
    started: str | None
    finished: str | None
    position: int | None = Field(description="its place in the queue (1: next), while queued")
    progress: JobProgress | None
    options: dict[str, Any] = Field(description="the options the client gave")
    preset: str | None
    config: dict[str, Any] = Field(description="the full configuration the job runs with")
    inputs: JobInputs
    error: str | None
    attempts: int = Field(description="times it was handed to a worker")
    resumed_from: int | None = Field(description="the iteration its last attempt resumed from")
    device: str | None
    parent: str | None = Field(description="the job it was run again from")
    cancel_requested: bool
    finish_requested: bool = Field(False, description="Finish now was asked for (POST /api/jobs/{id}/finish)")
    links: JobLinks

    def as_json(self) -> dict[str, Any]:
        """The JSON object of the job, as the API sends it (in a response and in events)."""
        return self.model_dump(mode="json", by_alias=True)


class JobCounts(BaseModel):
    """Jobs by status."""

    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0


class JobList(BaseModel):
    """A page of jobs, newest first (``GET /api/jobs``)."""

    jobs: list[Job]
    next: int | None = Field(description="give it as `before` for the next page (null: none)")
    counts: JobCounts


class WorkerInfo(BaseModel):
    device: str
    pid: int | None
    state: Literal["busy", "idle", "starting", "restarting"]
    job: str | None
    restarts: int


class ServerInfo(BaseModel):
    """The server's version, limits, workers and job counts (``GET /api/server``)."""

    version: str
    workers: list[WorkerInfo]
    counts: JobCounts
    max_queue: int
    max_upload_mb: float
    max_styles: int


class OptionField(BaseModel):
    """One run option, for a form."""

    name: str
    kind: str = Field(description="bool, int, float, str, list or layers")
    nullable: bool
    default: str | None = Field(description="the default as restyle run --help shows it")
    value: Any = Field(description="the default value")
    metavar: str | None
    choices: list[Any] | None
    help: str
    group: str
    flag: str | None = Field(description="restyle run's flag")


class MethodInfo(BaseModel):
    """A method a job may name (option ``method``)."""

    name: str
    summary: str
    paintings: str = Field(description="the style images it takes: required, none (its model's) or optional")
    one_pass: bool = Field(description="one forward pass (about a second) rather than an optimisation")
    options: list[str] = Field(description="its own options (in fields)")


class RunOptions(BaseModel):
    """The run options a job takes (``GET /api/options``): restyle run's, with the JSON schema of ``options``."""

    model_config = ConfigDict(populate_by_name=True)

    fields: list[OptionField]
    presets: list[str]
    methods: list[MethodInfo] = Field(default_factory=list)
    schema_: dict[str, Any] = Field(alias="schema")
    limits: JobLimits | None = None


class JobLimits(BaseModel):
    """This server's caps on a job (``restyle serve --max-size`` ...): a job over them is refused (422,
    or 429 for a client's queue share), one running past ``max_job_seconds`` is stopped."""

    max_size: int
    max_iterations: int
    max_job_seconds: float
    max_queued_per_client: int


class Example(BaseModel):
    """A bundled example image, which a job may name instead of uploading."""

    name: str
    thumbnail: str


class FastModelListing(BaseModel):
    """A fast model a job may name (option ``--fast-model``): a trained network that paints in one
    pass, with no style images; ``style_blend`` weighs the styles it holds (``GET /api/models``)."""

    name: str = Field(description="the name a job's fast-model option gives")
    styles: list[str] = Field(description="the styles it holds, in the order of a job's style_blend weights")
    shape: dict[str, Any] = Field(description="the network's shape, from its record")
    steps: int | None = Field(description="training steps, from its record")
    photos: int | None = Field(description="training photos, from its record")
    bundled: bool = Field(description="shipped with restyle (else found in restyle serve --models DIR)")


RunOptions.model_rebuild()
