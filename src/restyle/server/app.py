"""The FastAPI application: the page, the bearer token, the upload cap, errors as one line, the
bundled examples and the server's state; the job endpoints are in :mod:`restyle.server.jobs`."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restyle._version import __version__
from restyle.server import options as job_options
from restyle.server.hub import Hub
from restyle.server.settings import Settings
from restyle.server.state import ServerState

STATIC = Path(__file__).with_name("static")
#: The page's content security policy: its own files only (previews arrive as data: URLs, downloads as blob: URLs).
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
log = logging.getLogger("restyle.server")


def create_app(settings: Settings, on_ready: Callable[[list[str]], None] | None = None) -> FastAPI:
    """The application for ``settings``: the data folder is opened and the workers start when it
    starts (its lifespan), and then ``on_ready(devices)`` is called."""
    settings.check()
    state_box: dict[str, ServerState] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServerState.open(settings, Hub())
        state_box["state"] = app.state.restyle = state
        if on_ready is not None:
            on_ready(state.devices)
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="restyle", version=__version__, lifespan=lifespan,
                  description="Neural style transfer jobs: submit a content image and style images, follow the "
                              "progress live, download the PNG. Errors carry a one-line `error`.")
    app.add_middleware(UploadCap, limit=settings.max_upload_bytes * (settings.max_styles + 1) + (1 << 20))
    _error_handlers(app)

    async def authorised(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
            raise HTTPException(401, "this server needs its token: send the header 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})

    from restyle.server.jobs import router as jobs_router

    app.include_router(jobs_router, prefix="/api", dependencies=[Depends(authorised)])

    @app.get("/api/server", dependencies=[Depends(authorised)], tags=["server"])
    def server_info(request: Request) -> dict[str, Any]:
        """The server's version, limits, workers and job counts."""
        state: ServerState = request.app.state.restyle
        return {"version": __version__, "workers": state.pool.describe(), "counts": state.store.counts(),
                "max_queue": settings.max_queue, "max_upload_mb": settings.max_upload_mb,
                "max_styles": settings.max_styles}

    @app.get("/api/options", dependencies=[Depends(authorised)], tags=["server"])
    def option_fields() -> dict[str, Any]:
        """The run options a job takes (restyle run's), with their kinds, defaults, choices and help."""
        return job_options.describe()

    @app.get("/api/examples", dependencies=[Depends(authorised)], tags=["examples"])
    def examples(request: Request) -> list[dict[str, Any]]:
        """The bundled example images, which a job may name instead of uploading."""
        state: ServerState = request.app.state.restyle
        return [{"name": name, "thumbnail": f"/api/examples/{name}/thumbnail"} for name in state.examples]

    @app.get("/api/examples/{name}/thumbnail", dependencies=[Depends(authorised)], tags=["examples"],
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def example_thumbnail(name: str, request: Request) -> Response:
        """A small JPEG of a bundled example."""
        state: ServerState = request.app.state.restyle
        if name not in state.examples:
            raise HTTPException(404, f"no bundled example '{name}'")
        return Response(state.thumbnail(state.examples[name]), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=86400"})

    page_headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
                    "Referrer-Policy": "no-referrer"}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=page_headers)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error response carries ``error``: one line a person can read (``detail`` stays FastAPI's)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        line = detail if isinstance(detail, str) else "; ".join(_item_line(i) for i in detail)
        return JSONResponse({"detail": detail, "error": line}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": items, "error": "; ".join(_item_line(i) for i in items)}, 422)


def _item_line(item: dict[str, Any]) -> str:
    if item.get("type") == "image":  # the loader's message names the image already, as the CLI's does
        return str(item.get("msg", ""))
    where = ".".join(str(p) for p in item.get("loc", [])[1:]) or "request"
    return f"{where}: {item.get('msg', '')}"


class BodyTooLarge(Exception):
    """A request body went over the upload cap while it was read."""


class UploadCap:
    """Refuse a job submission larger than the cap with 413, from its Content-Length before reading it,
    or as soon as the bytes read pass the cap (a body sent without a length)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        sent = False

        async def tracking(message: Message) -> None:
            nonlocal sent
            sent = True
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except BodyTooLarge:
            if not sent:
                await _too_large(send, self.limit)


async def _too_large(send: Callable[[Message], Awaitable[None]], limit: int) -> None:
    line = f"the request is over the upload cap of {limit / 1048576:.0f} MB"
    body = json.dumps({"detail": line, "error": line}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
