"""Run the server: bind the address (a one-line error when it is taken), then uvicorn."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from types import FrameType

from restyle.errors import ConfigError
from restyle.server.settings import Settings


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        hint = f"; try another --port (e.g. {port + 1})" if port else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}{hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, *, log_level: str = "info", rebuild_queue: bool = False,
          announce: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM; jobs left running resume at the next start); with
    ``rebuild_queue``, first make a new job database from the job folders (:mod:`restyle.server.rebuild`)."""
    import uvicorn

    from restyle.server.app import create_app
    from restyle.server.state import resolve_devices
    from restyle.server.store import Store

    settings.check()
    resolve_devices(settings)  # one-line errors before anything listens
    Store.check_free(settings.data)
    if rebuild_queue:
        from restyle import api
        from restyle.server.rebuild import rebuild

        announce(rebuild(settings.data, api.example_images()).line())
    Store.check_readable(settings.data)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    if shown in ("0.0.0.0", "[::]"):
        shown = socket.gethostname()

    def ready(devices: list[str]) -> None:
        announce(f"restyle: serving http://{shown}:{port}/ (API docs at /docs; data in {settings.data}; "
                 f"workers: {', '.join(devices) or 'none'}{'; token required' if settings.token else ''})")

    app = create_app(settings, on_ready=ready)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            state = getattr(app.state, "restyle", None)
            if state is not None:  # end the event streams, or uvicorn would wait for them to time out
                state.hub.close()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level=log_level, access_log=log_level in ("info", "debug"),
                            timeout_graceful_shutdown=5, lifespan="on")
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C again once it has shut down
        pass
    announce("restyle: stopped; jobs that were running will resume at the next start")
