"""FastAPI dependencies of the routes: the server's state (opened by the app's lifespan), its parts,
and the bearer token check; each with an ``Annotated`` alias a route names as a parameter type."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from restyle.server.settings import Settings
from restyle.server.state import ServerState


async def get_state(request: Request) -> ServerState:
    """The running server's state (set when the app starts); a coroutine, so that FastAPI calls it on
    the event loop instead of in a worker thread."""
    state: ServerState = request.app.state.restyle
    return state


StateDep = Annotated[ServerState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def authorised(request: Request, settings: SettingsDep) -> None:
    """Refuse a request without the server's token (when it has one) with 401."""
    if settings.token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        raise HTTPException(401, "this server needs its token: send the header 'Authorization: Bearer TOKEN'",
                            headers={"WWW-Authenticate": "Bearer"})
