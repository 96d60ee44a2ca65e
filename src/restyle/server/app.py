"""The FastAPI application: the page, the bearer token, the upload cap, errors as one line, the
bundled examples and the server's state; the job endpoints are in :mod:`restyle.server.jobs`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from restyle._version import __version__
from restyle.server import job_options
from restyle.server.deps import StateDep, authorised
from restyle.server.errors import BINARY, answers, install
from restyle.server.hub import Hub
from restyle.server.jobs import router as jobs_router
from restyle.server.limits import UploadCap
from restyle.server.models import Example, FastModelListing, JobCounts, JobLimits, RunOptions, ServerInfo, WorkerInfo
from restyle.server.schema import openapi
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state.restyle = ServerState.open(settings, Hub())
        if on_ready is not None:
            on_ready(state.devices)
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="restyle", version=__version__, lifespan=lifespan,
                  description="Neural style transfer jobs: submit a content image and style images (or a fast "
                              "model), follow the progress live, download the PNG. Errors carry a one-line `error`.")
    app.state.settings = settings
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    app.add_middleware(UploadCap, limit=settings.max_upload_bytes * (settings.max_styles + 1) + (1 << 20))
    install(app)
    app.include_router(jobs_router, prefix="/api", dependencies=[Depends(authorised)])

    @app.get("/api/server", dependencies=[Depends(authorised)], tags=["server"], responses=answers(503))
    def server_info(state: StateDep) -> ServerInfo:
        """The server's version, limits, workers and job counts."""
        limits = state.settings
        return ServerInfo(version=__version__, workers=[WorkerInfo(**w) for w in state.pool.describe()],
                          counts=JobCounts(**state.store.counts()), max_queue=limits.max_queue,
                          max_upload_mb=limits.max_upload_mb, max_styles=limits.max_styles)

    @app.get("/api/options", dependencies=[Depends(authorised)], tags=["server"], responses=answers())
    def option_fields(state: StateDep) -> RunOptions:
        """The run options a job takes (restyle run's), with their kinds, defaults, choices and help, and
        this server's caps on them."""
        s = state.settings
        limits = JobLimits(max_size=s.max_size, max_iterations=s.max_iterations, max_job_seconds=s.max_job_seconds,
                           max_queued_per_client=s.max_queued_per_client)
        described = job_options.describe()
        for field in described["fields"]:  # the size a job gets without one, as the server applies it
            if field["name"] == "size" and isinstance(field["value"], int) and field["value"] > s.max_size:
                field.update(value=s.max_size, default=str(s.max_size))
        return RunOptions.model_validate({**described, "limits": limits})

    @app.get("/api/examples", dependencies=[Depends(authorised)], tags=["examples"], responses=answers())
    def examples(state: StateDep) -> list[Example]:
        """The bundled example images, which a job may name instead of uploading."""
        return [Example(name=name, thumbnail=f"/api/examples/{name}/thumbnail") for name in state.examples]

    @app.get("/api/examples/{name}/thumbnail", dependencies=[Depends(authorised)], tags=["examples"],
             response_class=Response, responses={200: {"content": {"image/jpeg": BINARY}}} | answers(
                 404, 422, 503, s404="no bundled example of that name"))
    def example_thumbnail(state: StateDep, name: str = PathParam(max_length=200)) -> Response:
        """A small JPEG of a bundled example."""
        if name not in state.examples:
            raise HTTPException(404, f"no bundled example '{name}'")
        return Response(state.thumbnail(state.examples[name]), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/models", dependencies=[Depends(authorised)], tags=["models"], responses=answers())
    def fast_models(state: StateDep) -> list[FastModelListing]:
        """The fast models a job may name instead of giving style images: the bundled ones, then those
        in ``restyle serve --models DIR`` (found when the server started), each with its styles."""
        return [FastModelListing(name=m.name, styles=list(m.styles), shape=m.shape, steps=m.steps, photos=m.photos,
                          bundled=m.bundled) for m in state.models.values()]

    page_headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
                    "Referrer-Policy": "no-referrer"}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=page_headers)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app

