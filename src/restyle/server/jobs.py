"""The job endpoints: submit (multipart), look up, list, follow live (server-sent events), download
the PNG and its loss history, cancel, forget, run again. Each declares the error answers it gives
(:mod:`restyle.server.errors`); the submission's checks are in :mod:`restyle.server.submit`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from restyle.server.deps import StateDep
from restyle.server.errors import BINARY, answers
from restyle.server.job_options import OptionError, check_fields
from restyle.server.models import Job, JobCounts, JobList
from restyle.server.records import FINAL
from restyle.server.schema import caps
from restyle.server.state import ServerState
from restyle.server.submit import (
    check_caps,
    check_styles,
    client_of,
    create,
    find_job,
    idempotency_key,
    offered,
    options,
    refuse,
    take_submission,
)

router = APIRouter(tags=["jobs"])
KEEPALIVE = 15.0  # seconds between comments on a quiet event stream
DONE_ONLY = "the job has no result yet (or was cancelled); a failed job keeps its last image"
#: A job id in a path (ids are 12 hex digits; anything else is no job).
JobId = Annotated[str, PathParam(max_length=64, description="the job's id")]


@router.post("/jobs", status_code=201, response_model=Job,
             responses={200: {"description": "a job with this Idempotency-Key exists already", "model": Job}}
             | answers(400, 413, 422, 429, 503, s400="a form the server cannot read, or an image the loader "
                       "cannot read", s422="options, fields or images that cannot run (a 1x1 image, a method "
                       "without the paintings it takes, an output over --max-size ...); each item names one"))
async def submit(request: Request, state: StateDep) -> JSONResponse:
    """Queue a job: a content image and style images, or a content image and a fast model (option
    a fast model, a name ``GET /api/models`` lists, with ``style_blend`` weighing its styles).
    Header ``Idempotency-Key`` (optional): a retried submission returns the job made first."""
    return await take_submission(request, state)


@router.get("/jobs/{job_id}", responses=answers(404, 422, 503))
def get_job(job_id: JobId, state: StateDep) -> Job:
    """A job: status (queued, running, done, failed, cancelled), progress with ETA, config, error."""
    return find_job(state, job_id)


@router.get("/jobs", responses=answers(422, 503))
def list_jobs(state: StateDep, limit: int = Query(20, ge=1, le=100),
              before: int | None = Query(None, ge=0, le=2**63 - 1, description="the `next` of the previous page"),
              status: str | None = Query(None, pattern="^(queued|running|done|failed|cancelled)$")) -> JobList:
    """Jobs, newest first, a page at a time."""
    records = state.store.page(limit=limit + 1, before=before, status=status)
    page = records[:limit]
    return JobList(jobs=[state.public(r) for r in page], next=page[-1].seq if len(records) > limit else None,
                   counts=JobCounts(**state.store.counts()))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}} | answers(404, 422, 503))
async def job_events(job_id: JobId, state: StateDep) -> StreamingResponse:
    """Server-sent events: ``snapshot`` (the job and its live state) first, then ``started``, ``progress``,
    ``preview`` (a JPEG data: URL every few iterations), ``note`` and ``status``; the stream ends with the
    job (done, failed or cancelled)."""
    find_job(state, job_id)
    sub = state.hub.subscribe(job_id)  # before the snapshot, so no event falls between them
    job = find_job(state, job_id)

    async def stream() -> Any:
        try:
            yield _sse("snapshot", {"job": job.as_json(), "live": state.hub.live(job_id)})
            if job.status in FINAL:
                return
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    return
                seq, kind, data = item
                yield _sse(kind, data, seq)
                if kind == "status" and data["status"] in FINAL:
                    return
        finally:
            state.hub.unsubscribe(job_id, sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(kind: str, data: Any, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _done_file(state: ServerState, job_id: str, name: str) -> Path:
    job = find_job(state, job_id)
    kept = job.status == "failed" and name == "result.png" and (state.store.job_dir(job_id) / name).is_file()
    if job.status != "done" and not kept:  # a job stopped at the time cap keeps its last image
        raise HTTPException(409, f"job {job_id} is {job.status}; it has no result"
                            + (f" ({job.error})" if job.error else ""))
    path = state.store.job_dir(job_id) / name
    if not path.is_file():
        raise HTTPException(404, f"job {job_id}'s {name} is missing from the data folder")
    return path


@router.get("/jobs/{job_id}/result", response_class=FileResponse,
            responses={200: {"content": {"image/png": BINARY}}} | answers(404, 409, 422, 503, s409=DONE_ONLY))
def job_result(job_id: JobId, state: StateDep) -> FileResponse:
    """The PNG, with its run record embedded (``restyle run --from-image`` reads it)."""
    path = _done_file(state, job_id, "result.png")
    return FileResponse(path, media_type="image/png", filename=f"restyle-{job_id}.png")


@router.get("/jobs/{job_id}/losses.csv", response_class=FileResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}} | answers(404, 409, 422, 503, s409=DONE_ONLY))
def job_losses(job_id: JobId, state: StateDep) -> FileResponse:
    """The loss history, one row per iteration (as ``restyle run`` writes beside its output)."""
    path = _done_file(state, job_id, "result.losses.csv")
    return FileResponse(path, media_type="text/csv", filename=f"restyle-{job_id}.losses.csv")


@router.get("/jobs/{job_id}/thumbnail", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": BINARY}}} | answers(404, 409, 422, 503, s409=DONE_ONLY))
def job_thumbnail(job_id: JobId, state: StateDep) -> FileResponse:
    """A small JPEG of the result."""
    return FileResponse(_done_file(state, job_id, "thumb.jpg"), media_type="image/jpeg")


@router.get("/jobs/{job_id}/inputs/{index}", response_class=Response,
            responses={200: {"content": {"image/jpeg": BINARY}}} | answers(404, 422, 503, s404="no such job, or no input of that index"))
def job_input(job_id: JobId, state: StateDep, index: int = PathParam(ge=0, le=1000)) -> Response:
    """A small JPEG of one of the job's inputs: 0 is the content image, 1, 2, ... its style images."""
    job = find_job(state, job_id)
    items = job.inputs.images()
    if not 0 <= index < len(items):
        raise HTTPException(404, f"job {job_id} has {len(items)} input images (0 is the content)")
    return Response(state.thumbnail(state.store.input_path(items[index])), media_type="image/jpeg",
                    headers={"Cache-Control": "max-age=86400"})


@router.post("/jobs/{job_id}/cancel", response_model=Job,
             responses={202: {"description": "cancelling: the running job stops within an iteration", "model": Job}}
             | answers(404, 409, 413, 422, 503, s409="the job is over already; nothing to cancel"))
def cancel_job(job_id: JobId, state: StateDep) -> JSONResponse:
    """Cancel a queued job (200, at once) or a running one (202; it ends ``cancelled`` within an iteration)."""
    job = find_job(state, job_id)
    if job.status in FINAL:
        raise HTTPException(409, f"job {job_id} is {job.status} already; nothing to cancel")
    status = state.store.request_cancel(job_id)
    if status == "running":
        state.pool.cancel(job_id)
    else:
        state.hub.publish(job_id, "status", {"status": status, "job": _json(state.job(job_id))})
    return JSONResponse(_json(state.job(job_id)), 202 if status == "running" else 200)


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response,
               responses=answers(404, 409, 422, 503, s409="the job is running: cancel it first (POST .../cancel)"))
def delete_job(job_id: JobId, state: StateDep) -> Response:
    """Forget a job and delete its files (uploads no other job uses go too): a queued one is cancelled
    first; a running one must be cancelled first (409). Afterwards the job is 404 on every route."""
    job = find_job(state, job_id)
    if job.status == "queued" and state.store.request_cancel(job_id) == "cancelled":
        state.hub.publish(job_id, "status", {"status": "cancelled", "job": _json(state.job(job_id))})
    job = find_job(state, job_id)
    if job.status not in FINAL:
        raise HTTPException(409, f"job {job_id} is {job.status}: cancel it first (POST /api/jobs/{job_id}/cancel)")
    state.store.delete(job_id)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/finish", status_code=202, response_model=Job,
             responses=answers(404, 409, 413, 422, 503,
                               s409="the job is not running (queued: no picture yet; or over)"))
def finish_job(job_id: JobId, state: StateDep) -> JSONResponse:
    """End a running job now with the picture it has reached: it ends ``done``, its result the image of
    the row it was at (a coarser stage's upsampled), its record's ``stop_reason`` "finished on request"."""
    find_job(state, job_id)
    status = state.store.request_finish(job_id)  # kept: a job resumed after a restart finishes at once
    if status != "running":
        raise HTTPException(409, f"job {job_id} is {status}; " + (
            "it has no picture yet (cancel it instead)" if status == "queued" else "nothing to finish"))
    state.pool.finish(job_id)
    return JSONResponse(_json(state.job(job_id)), 202)


def _json(job: Job | None) -> dict[str, Any] | None:
    return job.as_json() if job is not None else None


@router.post("/jobs/{job_id}/rerun", status_code=201, response_model=Job,
             responses={200: {"description": "a job with this Idempotency-Key exists already", "model": Job}}
             | answers(400, 404, 409, 413, 422, 429, 503, s409="the changed options cannot run together with the "
                       "job's own options and images (rules between options, style_blend's weights, a method's "
                       "paintings); the error names the rule",
                       s422="a changed option that cannot run anywhere (its type, bounds or name)"))
def rerun_job(job_id: JobId, request: Request, state: StateDep,
              body: Annotated[dict[str, Any] | None, Body(examples=[{"options": {"seed": 1}}])] = None
              ) -> JSONResponse:
    """Queue the job again with the same images and options; ``options`` given here change some of them
    (the body's schema is the run options' in ``/openapi.json``)."""
    job = find_job(state, job_id)
    key = idempotency_key(request)
    extra = sorted(set(body or {}) - {"options"})
    if extra:
        raise refuse(422, "unknown field (the body takes options only)", ["body", extra[0]])
    changes = (body or {}).get("options")
    if changes is not None and not isinstance(changes, dict):
        raise refuse(422, "options must be a JSON object", ["body", "options"])
    try:  # each changed option alone: 422; what no longer fits this job's images and options: 409
        check_fields(changes, offered(state), caps(state.settings))
    except OptionError as err:
        raise HTTPException(422, err.errors) from None
    merged = {**job.options, **({"preset": job.preset} if job.preset else {}), **(changes or {})}
    given, preset, config = options(merged, len(job.inputs.styles), state, status=409)
    check_styles(config, len(job.inputs.styles), status=409)
    check_caps(state.settings, config, job.inputs, photo_status=409)
    return create(state, given, preset, config, job.inputs, key, job_id, client=client_of(request))
