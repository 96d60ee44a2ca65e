"""The upload cap: an ASGI middleware that refuses a request body over it with 413."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
