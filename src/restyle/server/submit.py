"""A job submission's checks: its form, options, caps and images, in the order a client's mistakes are
found; each refusal names the field at fault. The routes are in :mod:`restyle.server.jobs`."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from restyle import api
from restyle.errors import InputImageError
from restyle.server.job_options import OptionError, parse_options
from restyle.server.limits import BodyTooLarge
from restyle.server.models import Job
from restyle.server.records import ImageInput, JobInputs
from restyle.server.schema import MAX_KEY
from restyle.server.state import ServerState
from restyle.server.store import QueueFull

#: HTTP status of an image the loader refuses, by the kind of problem.
IMAGE_STATUS = {"unreadable": 400, "too-large": 413, "too-small": 422}


def refuse(status: int, message: str, loc: list[Any] | None = None, kind: str = "value_error") -> HTTPException:
    """An error answer: ``message`` alone, or as the one item of a field (``loc``) at fault."""
    if loc is None:
        return HTTPException(status, message)
    return HTTPException(status, [{"loc": loc, "msg": message, "type": kind}])


def _queue_full(message: str) -> HTTPException:
    return HTTPException(429, message, headers={"Retry-After": "10"})


def options(raw: Any, styles: int, state: ServerState, status: int = 422) -> tuple[dict[str, Any], str | None, Any]:
    """The job's options checked (``status``, 422, naming each bad field), a fast model against those on offer."""
    try:
        given, preset, config = parse_options(raw, styles, offered(state))
    except OptionError as err:
        raise HTTPException(status, err.errors) from None
    cap = state.settings.max_size
    if "size" not in given and config.scales is None and config.size is not None and config.size > cap:
        config = dataclasses.replace(config, size=cap)  # the default size, within this server's cap
    return given, preset, config


def offered(state: ServerState) -> dict[str, Any]:
    """The fast models' names a job may give, each with the styles it holds."""
    return {name: m.styles for name, m in state.names.items()}


def check_styles(config: Any, styles: int, status: int = 422) -> None:
    """``status`` (422) unless the job's method gets the style images it takes: some, or none for a method
    whose styles come with its model (a fast model)."""
    method = api.method_for(config)
    if method.paintings == "none" and styles:
        raise refuse(status, f"--method {method.name} carries its own styles: leave out the style images (or "
                      "the model, to optimise towards them)", ["body", "style"])
    if method.paintings == "required" and not styles:
        raise refuse(status, "give at least one style image: a file, or the name of a bundled example "
                      "(or a fast model: GET /api/models)", ["body", "style"])


def check_caps(settings: Any, config: Any, inputs: JobInputs | None = None, photo_status: int = 422) -> None:
    """422 for a job over the server's caps on size and iterations, naming the field and the cap; with
    ``inputs``, ``photo_status`` for a job at the photo's own size whose photo is larger than ``--max-size``."""
    longest = config.scales[-1] if config.scales else config.size
    field, status = "scales" if config.scales else "size", 422
    if longest is None and inputs is not None:
        longest, field, status = max(inputs.content.width, inputs.content.height), "size", photo_status
    if longest is not None and longest > settings.max_size:
        raise refuse(status, f"{longest} px is over this server's cap of {settings.max_size} px (--max-size)",
                      ["body", "options", field])
    if config.iterations is not None and config.iterations > settings.max_iterations:
        raise refuse(422, f"{config.iterations} is over this server's cap of {settings.max_iterations} "
                      "(--max-iterations); leave it out to stop when finished", ["body", "options", "iterations"])
    if config.refine > settings.max_iterations:
        raise refuse(422, f"{config.refine} is over this server's cap of {settings.max_iterations} iterations "
                      "(--max-iterations)", ["body", "options", "refine"])


def client_of(request: Request) -> str:
    """Who a request comes from, for the per-client queue cap: its ``X-Restyle-Client`` header (the
    page sends one per browser), else its address."""
    named = request.headers.get("x-restyle-client", "").strip()[:64]
    return named or (request.client.host if request.client else "unknown")


def create(state: ServerState, given: dict[str, Any], preset: str | None, config: Any, inputs: JobInputs,
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
    job = find_job(state, record.id)
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
        raise refuse(413, f"{role} '{name}': the file is over the upload cap of {state.settings.max_upload_mb:g} MB")
    path, digest, size = taken
    try:
        width, height = api.check_image(path, role, name=name, max_pixels=max_pixels)
    except InputImageError as err:
        path.unlink(missing_ok=True)
        status = IMAGE_STATUS.get(getattr(err, "problem", "unreadable"), 400)
        raise refuse(status, str(err), loc if status == 422 else None, "image") from None
    return ImageInput(name=name, sha256=digest, bytes=size, width=width, height=height), path


def _named_image(state: ServerState, value: str, role: str, loc: list[Any]) -> ImageInput:
    """A bundled example by name (the extension may be left out) or an earlier upload by ``sha256:DIGEST``."""
    match = re.fullmatch(r"sha256:([0-9a-f]{64})", value)
    if match:
        path = state.store.upload_path(match.group(1))
        if not path.is_file():
            raise refuse(422, f"{role}: no upload with SHA-256 {match.group(1)} on this server", loc)
        width, height = api.check_image(path, role)
        return ImageInput(name=value, sha256=match.group(1), bytes=path.stat().st_size, width=width,
                          height=height)
    names = {n: n for n in state.examples} | {Path(n).stem: n for n in state.examples}
    if value not in names:
        raise refuse(422, f"{role}: no bundled example '{value[:80]}'; choose one of: {', '.join(state.examples)}",
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


def find_job(state: ServerState, job_id: str) -> Job:
    job = state.job(job_id) if job_id.isalnum() else None
    if job is None:
        raise HTTPException(404, f"no job '{job_id[:40]}'")
    return job


async def take_submission(request: Request, state: ServerState) -> JSONResponse:
    """Check a job submission (form, options, caps, images) and queue the job: 201 with the job, or 200
    with the job an earlier submission of the same ``Idempotency-Key`` made."""
    settings = state.settings
    key = idempotency_key(request)  # a retry returns the job the first made (see Store.create)
    if state.store.counts()["queued"] >= settings.max_queue and key is None:
        raise _queue_full(f"the queue is full ({settings.max_queue} jobs waiting); try again later")
    try:
        form = await request.form(max_files=settings.max_styles + 2, max_fields=settings.max_styles + 4)
    except BodyTooLarge:
        raise refuse(413, f"the request is over the upload cap ({settings.max_upload_mb:g} MB per image)") from None
    except HTTPException:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed multipart body
        raise refuse(400, f"cannot read the form ({' '.join(str(err).split()) or type(err).__name__})") from None
    try:
        parts = list(form.multi_items())
        unknown = sorted({k for k, _ in parts} - {"content", "style", "options"})
        if unknown:
            raise refuse(422, "unknown form field (use content, style and options)", ["body", unknown[0]])
        contents = [v for k, v in parts if k == "content"]
        styles = [v for k, v in parts if k == "style"]
        raw_options = [v for k, v in parts if k == "options"]
        if len(contents) != 1:
            raise refuse(422, "give one content image: a file, or the name of a bundled example", ["body", "content"])
        if len(styles) > settings.max_styles:
            raise refuse(422, f"at most {settings.max_styles} style images", ["body", "style"])
        if len(raw_options) > 1 or (raw_options and not isinstance(raw_options[0], str)):
            raise refuse(422, "give options once, as a JSON object", ["body", "options"])
        given, preset, config = options(raw_options[0] if raw_options else None, len(styles), state)
        check_styles(config, len(styles))
        check_caps(settings, config)
        inputs = await run_in_threadpool(_take_images, state, contents[0], styles, config.max_pixels)
        check_caps(settings, config, inputs)
    finally:
        await form.close()
    return await run_in_threadpool(create, state, given, preset, config, inputs, key,  # commits wait for the disk
                                   client=client_of(request))


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (422 when it is empty or over :data:`MAX_KEY` characters)."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY:
        raise refuse(422, f"the Idempotency-Key header takes 1 to {MAX_KEY} characters", ["header", "Idempotency-Key"])
    return key
