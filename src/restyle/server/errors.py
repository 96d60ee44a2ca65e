"""The API's error answers: one body shape (:class:`ErrorBody`), the statuses each route declares
(:func:`answers`), and the handlers that turn every failure into that shape in the client's terms.

A failure of the server's own storage (a full disk, an unreadable database) is answered 503 with a
line a client can act on; the path and the system's words go to the server's log only.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from restyle.errors import ConfigError
from restyle.server.faults import storage_fault

log = logging.getLogger("restyle.server")


class ErrorItem(BaseModel):
    """One field that cannot run: where it is (``["body", "options", "size"]``), why, and the kind."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer: ``error`` is one line a person can read; ``detail`` is that line, or the
    list of the fields at fault (a 422 for options or form fields)."""

    detail: str | list[ErrorItem]
    error: str = Field(description="one line saying what failed, in the client's terms")


#: What each error status means on this API (the description each route's answer carries).
MEANING = {
    400: "a body or image the server cannot read (a malformed form or JSON body, a file that is not an image)",
    401: "the server was started with --token and the request lacks it: send 'Authorization: Bearer TOKEN'",
    404: "no such job, example or file",
    409: "the job is not in a state that allows this (no result yet; nothing to cancel or finish)",
    413: "an upload over the server's cap (--max-upload-mb), or an image over max_pixels",
    422: "options, fields or parameters that cannot run; each item of detail names one",
    429: "the queue is full (--max-queue), or this client has --max-queued-per-client jobs waiting; "
         "retry after the Retry-After header's seconds",
    503: "the server cannot use its data folder now (its disk is full, or its job database is unreadable)",
}
#: The content of an image answer (a generated client reads it as bytes).
BINARY = {"schema": {"type": "string", "format": "binary"}}
HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
}


def answers(*codes: int, **described: str) -> dict[Any, Any]:
    """The ``responses`` of a route: each error status in ``codes`` (and 401, which every API route may
    answer) with :class:`ErrorBody` and its meaning (``described``: ``s404="..."`` in the route's words)."""
    out: dict[Any, Any] = {}
    for code in sorted({*codes, 401}):
        entry: dict[str, Any] = {"model": ErrorBody, "description": described.get(f"s{code}", MEANING[code])}
        if code in HEADERS:
            entry["headers"] = HEADERS[code]
        out[code] = entry
    return out


def install(app: FastAPI) -> None:
    """Every error answer carries ``error``: one line a person can read (``detail`` stays FastAPI's)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        line = detail if isinstance(detail, str) else "; ".join(_item_line(i) for i in detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(request))
            line = f"{request.method} is not allowed on {request.url.path}; it takes {headers['Allow']}"
        return JSONResponse({"detail": line if exc.status_code == 405 else detail, "error": line}, exc.status_code,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": items, "error": "; ".join(_item_line(i) for i in items)}, 422)

    async def storage(request: Request, exc: Exception) -> JSONResponse:
        line = storage_fault(exc, "the job" if request.method == "POST" else "this request")
        if line is None:
            raise exc
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse({"detail": line, "error": line}, 503, headers={"Retry-After": "60"})

    app.add_exception_handler(OSError, storage)
    app.add_exception_handler(sqlite3.Error, storage)

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, exc: ConfigError) -> JSONResponse:  # options no check named
        return JSONResponse({"detail": str(exc), "error": str(exc)}, 422)


def _allowed(request: Request) -> list[str]:
    """The methods some route takes at the request's path (every route, not only the first that matched)."""
    scope = {k: v for k, v in request.scope.items() if k not in ("route", "endpoint", "path_params")}
    return [m for m in ("DELETE", "GET", "PATCH", "POST", "PUT")
            if any(route.matches({**scope, "method": m})[0] == Match.FULL for route in request.app.router.routes)]


def _item_line(item: dict[str, Any]) -> str:
    if item.get("type") == "image":  # the loader's message names the image already, as the CLI's does
        return str(item.get("msg", ""))
    where = ".".join(str(p) for p in item.get("loc", [])[1:]) or "request"
    return f"{where}: {item.get('msg', '')}"
