"""The job endpoints: submit (multipart), look up, list, follow live (server-sent events), download
the PNG and its loss history, cancel, forget, run again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from restyle import api
from restyle.errors import InputImageError
from restyle.server.deps import StateDep
from restyle.server.job_options import OptionError, parse_options
from restyle.server.limits import BodyTooLarge
from restyle.server.models import Job, JobCounts, JobList
from restyle.server.records import FINAL, ImageInput, JobInputs
from restyle.server.state import ServerState
from restyle.server.store import QueueFull

router = APIRouter(tags=["jobs"])
KEEPALIVE = 15.0  # seconds between comments on a quiet event stream
#: HTTP status of an image the loader refuses, by the kind of problem.
IMAGE_STATUS = {"unreadable": 400, "too-large": 413, "too-small": 422}

SUBMIT_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["content"],
    "properties": {
        "content": {"description": "the photo: a file, or the name of a bundled example (GET /api/examples), "
                                   "or sha256:DIGEST of an image uploaded before", "type": "string", "format": "binary"},
        "style": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "one or more style images (repeat the field), each a file or a name as for "
                                 "content; none with a fast model"},
        "options": {"type": "string", "description": "JSON object of run options (GET /api/options), e.g. "
                                                     '{"size": 512, "iterations": 300} or '
                                                     '{"method": "universal", "size": 256}'},
    }}}}}}


def _refuse(status: int, message: str, loc: list[Any] | None = None, kind: str = "value_error") -> HTTPException:
    if loc is None:
        return HTTPException(status, message)
    return HTTPException(status, [{"loc": loc, "msg": message, "type": kind}])


def _queue_full(message: str) -> HTTPException:
    return HTTPException(429, message, headers={"Retry-After": "10"})


@router.post("/jobs", status_code=201, openapi_extra=SUBMIT_DOC, response_model=Job,
             responses={200: {"description": "a job with this Idempotency-Key exists already"},
                        400: {"description": "an image the loader cannot read"},
                        413: {"description": "an upload over --max-upload-mb, or an image over max_pixels"},
                        422: {"description": "options or fields that cannot run"},
                        429: {"description": "the queue holds --max-queue jobs"}})
async def submit(request: Request, state: StateDep) -> JSONResponse:
    """Queue a job: a content image and style images, or a content image and a fast model (option
    a fast model, a name ``GET /api/models`` lists, with ``style_blend`` weighing its styles).
    Header ``Idempotency-Key`` (optional): a retried submission returns the job made first."""
    settings = state.settings
    key = request.headers.get("idempotency-key")  # a retry returns the job the first made (see Store.create)
    if state.store.counts()["queued"] >= settings.max_queue and key is None:
        raise _queue_full(f"the queue is full ({settings.max_queue} jobs waiting); try again later")
    try:
        form = await request.form(max_files=settings.max_styles + 2, max_fields=settings.max_styles + 4)
    except BodyTooLarge:
        raise _refuse(413, f"the request is over the upload cap ({settings.max_upload_mb:g} MB per image)") from None
    except HTTPException:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed multipart body
        raise _refuse(400, f"cannot read the form ({' '.join(str(err).split()) or type(err).__name__})") from None
    try:
        parts = list(form.multi_items())
        unknown = sorted({k for k, _ in parts} - {"content", "style", "options"})
        if unknown:
            raise _refuse(422, "unknown form field (use content, style and options)", ["body", unknown[0]])
        contents = [v for k, v in parts if k == "content"]
        styles = [v for k, v in parts if k == "style"]
        raw_options = [v for k, v in parts if k == "options"]
        if len(contents) != 1:
            raise _refuse(422, "give one content image: a file, or the name of a bundled example", ["body", "content"])
        if len(styles) > settings.max_styles:
            raise _refuse(422, f"at most {settings.max_styles} style images", ["body", "style"])
        if len(raw_options) > 1 or (raw_options and not isinstance(raw_options[0], str)):
            raise _refuse(422, "give options once, as a JSON object", ["body", "options"])
        given, preset, config = _options(raw_options[0] if raw_options else None, len(styles), state)
        _check_styles(config, len(styles))
        check_caps(settings, config)
        inputs = await run_in_threadpool(_take_images, state, contents[0], styles, config.max_pixels)
        check_caps(settings, config, inputs)
    finally:
        await form.close()
    return await run_in_threadpool(_create, state, given, preset, config, inputs, key,  # commits wait for the disk
                                   client=client_of(request))


def _options(raw: Any, styles: int, state: ServerState) -> tuple[dict[str, Any], str | None, Any]:
    """The job's options checked (422 naming each bad field), a fast model against those on offer."""
    try:
        return parse_options(raw, styles, {name: m.styles for name, m in state.names.items()})
    except OptionError as err:
        raise HTTPException(422, err.errors) from None


def _check_styles(config: Any, styles: int) -> None:
    """422 unless the job's method gets the style images it takes: some, or none for a method whose
    styles come with its model (a fast model)."""
    method = api.method_for(config)
    if method.paintings == "none" and styles:
        raise _refuse(422, f"--method {method.name} carries its own styles: leave out the style images (or "
                      "the model, to optimise towards them)", ["body", "style"])
    if method.paintings == "required" and not styles:
        raise _refuse(422, "give at least one style image: a file, or the name of a bundled example "
                      "(or a fast model: GET /api/models)", ["body", "style"])


def check_caps(settings: Any, config: Any, inputs: JobInputs | None = None) -> None:
    """422 for a job over the server's caps on size and iterations (with ``inputs``: also a job at the
    photo's own size whose photo is larger than ``--max-size``), naming the field and the cap."""
    longest = config.scales[-1] if config.scales else config.size
    field = "scales" if config.scales else "size"
    if longest is None and inputs is not None:
        longest, field = max(inputs.content.width, inputs.content.height), "size"
    if longest is not None and longest > settings.max_size:
        raise _refuse(422, f"{longest} px is over this server's cap of {settings.max_size} px (--max-size)",
                      ["body", "options", field])
    if config.iterations is not None and config.iterations > settings.max_iterations:
        raise _refuse(422, f"{config.iterations} is over this server's cap of {settings.max_iterations} "
                      "(--max-iterations); leave it out to stop when finished", ["body", "options", "iterations"])
    if config.refine > settings.max_iterations:
        raise _refuse(422, f"{config.refine} is over this server's cap of {settings.max_iterations} iterations "
                      "(--max-iterations)", ["body", "options", "refine"])


def client_of(request: Request) -> str:
    """Who a request comes from, for the per-client queue cap: its ``X-Restyle-Client`` header (the
    page sends one per browser), else its address."""
    named = request.headers.get("x-restyle-client", "").strip()[:64]
    return named or (request.client.host if request.client else "unknown")


def _create(state: ServerState, given: dict[str, Any], preset: str | None, config: Any, inputs: JobInputs,
            key: str | None, parent: str | None = None, *, client: str | None = None) -> JSONResponse:
    config_dict = config.to_dict()
    config_dict.pop("device", None)
    try:
        record, created = state.store.create(options=given, preset=preset, config=config_dict, inputs=inputs,
                                          max_queue=state.settings.max_queue, idempotency_key=key, parent=parent,
                                          client=client, max_per_client=state.settings.max_queued_per_client)
    except QueueFull as err:
        raise _queue_full(str(err)) from None
    if created:
        state.pool.wake()
    job = _get(state, record.id)
    return JSONResponse(job.as_json(), 201 if created else 200, headers={"Location": f"/api/jobs/{record.id}"})


def _take_images(state: ServerState, content: Any, styles: list[Any], max_pixels: int | None) -> JobInputs:
    """Each image checked by the CLI's loader and kept by its SHA-256 (nothing is kept if one fails)."""
    items: list[tuple[ImageInput, Path | None]] = []  # (the input, the upload staged for it)
    try:
        items.append(_take_image(state, content, "content image", ["body", "content"], max_pixels))
        for i, style in enumerate(styles, 1):
            items.append(_take_image(state, style, f"style image {i}", ["body", "style", i - 1], max_pixels))
        for item, staged in items:
            if staged is not None:
                state.store.keep_upload(staged, item.sha256)
        return JobInputs(content=items[0][0], styles=[item for item, _ in items[1:]])
    finally:
        for _, staged in items:
            if staged is not None:
                staged.unlink(missing_ok=True)


def _take_image(state: ServerState, value: Any, role: str, loc: list[Any],
                max_pixels: int | None) -> tuple[ImageInput, Path | None]:
    if isinstance(value, str):
        return _named_image(state, value.strip(), role, loc), None
    assert isinstance(value, UploadFile)
    name = _display_name(value.filename)
    taken = state.store.stage_upload(value.file, state.settings.max_upload_bytes)
    if taken is None:
        raise _refuse(413, f"{role} '{name}': the file is over the upload cap of {state.settings.max_upload_mb:g} MB")
    path, digest, size = taken
    try:
        width, height = api.check_image(path, role, name=name, max_pixels=max_pixels)
    except InputImageError as err:
        path.unlink(missing_ok=True)
        status = IMAGE_STATUS.get(getattr(err, "problem", "unreadable"), 400)
        raise _refuse(status, str(err), loc if status == 422 else None, "image") from None
    return ImageInput(name=name, sha256=digest, bytes=size, width=width, height=height), path


def _named_image(state: ServerState, value: str, role: str, loc: list[Any]) -> ImageInput:
    """A bundled example by name (the extension may be left out) or an earlier upload by ``sha256:DIGEST``."""
    match = re.fullmatch(r"sha256:([0-9a-f]{64})", value)
    if match:
        path = state.store.upload_path(match.group(1))
        if not path.is_file():
            raise _refuse(422, f"{role}: no upload with SHA-256 {match.group(1)} on this server", loc)
        width, height = api.check_image(path, role)
        return ImageInput(name=value, sha256=match.group(1), bytes=path.stat().st_size, width=width,
                          height=height)
    names = {n: n for n in state.examples} | {Path(n).stem: n for n in state.examples}
    if value not in names:
        raise _refuse(422, f"{role}: no bundled example '{value[:80]}'; choose one of: {', '.join(state.examples)}",
                      loc)
    path = state.examples[names[value]]
    width, height = api.check_image(path, role)
    return ImageInput(name=names[value], sha256=_digest(path), bytes=path.stat().st_size, width=width,
                      height=height, example=names[value])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _display_name(filename: str | None) -> str:
    """An upload's file name as shown to people (never used as a path): its last part, one line, short."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name[:80] + "…" if len(name) > 80 else name) or "upload"


def _get(state: ServerState, job_id: str) -> Job:
    job = state.job(job_id) if job_id.isalnum() else None
    if job is None:
        raise HTTPException(404, f"no job '{job_id[:40]}'")
    return job


@router.get("/jobs/{job_id}")
def get_job(job_id: str, state: StateDep) -> Job:
    """A job: status (queued, running, done, failed, cancelled), progress with ETA, config, error."""
    return _get(state, job_id)


@router.get("/jobs")
def list_jobs(state: StateDep, limit: int = Query(20, ge=1, le=100),
              before: int | None = Query(None, ge=0, description="the `next` of the previous page"),
              status: str | None = Query(None, pattern="^(queued|running|done|failed|cancelled)$")) -> JobList:
    """Jobs, newest first, a page at a time."""
    records = state.store.page(limit=limit + 1, before=before, status=status)
    page = records[:limit]
    return JobList(jobs=[state.public(r) for r in page], next=page[-1].seq if len(records) > limit else None,
                   counts=JobCounts(**state.store.counts()))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: str, state: StateDep) -> StreamingResponse:
    """Server-sent events: ``snapshot`` (the job and its live state) first, then ``started``, ``progress``,
    ``preview`` (a JPEG data: URL every few iterations), ``note`` and ``status``; the stream ends with the
    job (done, failed or cancelled)."""
    _get(state, job_id)
    sub = state.hub.subscribe(job_id)  # before the snapshot, so no event falls between them
    job = _get(state, job_id)

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
    job = _get(state, job_id)
    kept = job.status == "failed" and name == "result.png" and (state.store.job_dir(job_id) / name).is_file()
    if job.status != "done" and not kept:  # a job stopped at the time cap keeps its last image
        raise HTTPException(409, f"job {job_id} is {job.status}; it has no result"
                            + (f" ({job.error})" if job.error else ""))
    path = state.store.job_dir(job_id) / name
    if not path.is_file():
        raise HTTPException(404, f"job {job_id}'s {name} is missing from the data folder")
    return path


@router.get("/jobs/{job_id}/result", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def job_result(job_id: str, state: StateDep) -> FileResponse:
    """The PNG, with its run record embedded (``restyle run --from-image`` reads it)."""
    path = _done_file(state, job_id, "result.png")
    return FileResponse(path, media_type="image/png", filename=f"restyle-{job_id}.png")


@router.get("/jobs/{job_id}/losses.csv", response_class=FileResponse, responses={200: {"content": {"text/csv": {}}}})
def job_losses(job_id: str, state: StateDep) -> FileResponse:
    """The loss history, one row per iteration (as ``restyle run`` writes beside its output)."""
    path = _done_file(state, job_id, "result.losses.csv")
    return FileResponse(path, media_type="text/csv", filename=f"restyle-{job_id}.losses.csv")


@router.get("/jobs/{job_id}/thumbnail", response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
def job_thumbnail(job_id: str, state: StateDep) -> FileResponse:
    """A small JPEG of the result."""
    return FileResponse(_done_file(state, job_id, "thumb.jpg"), media_type="image/jpeg")


@router.get("/jobs/{job_id}/inputs/{index}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def job_input(job_id: str, index: int, state: StateDep) -> Response:
    """A small JPEG of one of the job's inputs: 0 is the content image, 1, 2, ... its style images."""
    job = _get(state, job_id)
    items = job.inputs.images()
    if not 0 <= index < len(items):
        raise HTTPException(404, f"job {job_id} has {len(items)} input images (0 is the content)")
    return Response(state.thumbnail(state.store.input_path(items[index])), media_type="image/jpeg",
                    headers={"Cache-Control": "max-age=86400"})


@router.delete("/jobs/{job_id}", response_model=Job, responses={202: {"description": "cancelling: the running job stops shortly"},
                                            204: {"description": "forgotten (purge)"},
                                            409: {"description": "the job is over (cancel) or not over (purge)"}})
def cancel_job(job_id: str, state: StateDep,
               purge: bool = Query(False, description="forget a finished job and delete its files")) -> Response:
    """Cancel a queued or running job; with ``purge=true``, delete a job that is over."""
    job = _get(state, job_id)
    if purge:
        if job.status not in FINAL:
            raise HTTPException(409, f"job {job_id} is {job.status}; cancel it first")
        state.store.delete(job_id)
        return Response(status_code=204)
    if job.status in FINAL:
        raise HTTPException(409, f"job {job_id} is {job.status} already; nothing to cancel")
    status = state.store.request_cancel(job_id)
    if status == "running":
        state.pool.cancel(job_id)
    else:
        state.hub.publish(job_id, "status", {"status": status, "job": _json(state.job(job_id))})
    return JSONResponse(_json(state.job(job_id)), 202 if status == "running" else 200)


@router.post("/jobs/{job_id}/finish", status_code=202, response_model=Job,
             responses={409: {"description": "the job is not running (queued: no picture yet; or over)"}})
def finish_job(job_id: str, state: StateDep) -> JSONResponse:
    """End a running job now with the picture it has reached: it ends ``done``, its result the image of
    the row it was at (a coarser stage's upsampled), its record's ``stop_reason`` "finished on request"."""
    _get(state, job_id)
    status = state.store.request_finish(job_id)  # kept: a job resumed after a restart finishes at once
    if status != "running":
        raise HTTPException(409, f"job {job_id} is {status}; " + (
            "it has no picture yet (cancel it instead)" if status == "queued" else "nothing to finish"))
    state.pool.finish(job_id)
    return JSONResponse(_json(state.job(job_id)), 202)


def _json(job: Job | None) -> dict[str, Any] | None:
    return job.as_json() if job is not None else None


@router.post("/jobs/{job_id}/rerun", status_code=201, response_model=Job,
             responses={200: {"description": "a job with this Idempotency-Key exists already"}})
def rerun_job(job_id: str, request: Request, state: StateDep,
              body: Annotated[dict[str, Any] | None, Body(examples=[{"options": {"iterations": 500}}])] = None
              ) -> JSONResponse:
    """Queue the job again with the same images and options; ``options`` given here change some of them."""
    job = _get(state, job_id)
    changes = (body or {}).get("options") or {}
    if not isinstance(changes, dict):
        raise _refuse(422, "options must be a JSON object", ["body", "options"])
    merged = {**job.options, **({"preset": job.preset} if job.preset else {}), **changes}
    given, preset, config = _options(merged, len(job.inputs.styles), state)
    _check_styles(config, len(job.inputs.styles))
    check_caps(state.settings, config, job.inputs)
    return _create(state, given, preset, config, job.inputs, request.headers.get("idempotency-key"), job_id,
                   client=client_of(request))
