"""``restyle serve``: a web page and an HTTP API over :mod:`restyle.api`, with a persistent job queue.

FastAPI + uvicorn in the server process; jobs in SQLite under ``--data``; one spawned worker process
per device runs them (:mod:`restyle.server.worker`). See docs/server.md.

>>> from restyle.server import Settings, create_app
>>> app = create_app(Settings(data="jobs", devices=["cpu"]))   # an ASGI app, for uvicorn or a test client

Names are imported on first use, so a worker process (which imports :mod:`restyle.server.worker`)
does not load FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr

_EXPORTS = {"Settings": "restyle.server.settings", "create_app": "restyle.server.app", "serve": "restyle.server.run"}
__all__ = ["Settings", "create_app", "serve"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from restyle.server.app import create_app
    from restyle.server.run import serve
    from restyle.server.settings import Settings
