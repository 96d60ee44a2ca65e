"""``restyle serve``: the web page and HTTP API (needs the ``server`` extra: pip install 'restyle[server]')."""

from __future__ import annotations

import argparse
import os
from typing import Any

from restyle.errors import ConfigError

EPILOG_SERVE = """\
examples:
  restyle serve                                  # http://127.0.0.1:8000/, jobs kept in ~/.local/share/restyle/server
  restyle serve --port 8080 --data ./jobs --device cuda:0,cuda:1
  restyle serve --models ./models                # also offer the fast models (*.pt) in ./models
  RESTYLE_TOKEN=s3cret-token restyle serve --host 0.0.0.0   # reachable from other machines: token required

Jobs survive restarts: a job cut off by a stop or a crash runs again from its last saved image.
The API: /docs (OpenAPI) and docs/server.md.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the web page and HTTP API (a persistent job queue)",
        description="Serve a web page and an HTTP API for style transfer jobs, run by one worker process per device.",
        epilog=EPILOG_SERVE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; any other needs --token)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--data", metavar="DIR", help="folder for the job database, uploads and results "
                   "(default $XDG_DATA_HOME/restyle/server, i.e. ~/.local/share/restyle/server)")
    p.add_argument("--device", metavar="auto|cpu|cuda:N,..", default="auto",
                   help="one worker process per device, comma-separated (auto: one per CUDA GPU, else one on the CPU; "
                        "none: no workers, jobs only queue)")
    p.add_argument("--token", default=os.environ.get("RESTYLE_TOKEN"),
                   help="bearer token every API call must carry (default $RESTYLE_TOKEN); required with a --host "
                        "other than this machine")
    p.add_argument("--max-queue", type=int, default=100, metavar="N",
                   help="jobs that may wait; more are refused with 429 (default 100)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                   help="largest image file accepted; larger ones are refused with 413 (default 20)")
    p.add_argument("--max-size", type=int, default=2048, metavar="PX",
                   help="largest output a job may ask for (longest side); more is refused with 422 (default 2048)")
    p.add_argument("--max-iterations", type=int, default=1000, metavar="N",
                   help="most iterations a job may ask for; more is refused with 422 (default 1000; the automatic "
                        "stop is always accepted)")
    p.add_argument("--max-job-seconds", type=float, default=1800, metavar="S",
                   help="a job running longer is stopped and marked failed, its last image kept (default 1800)")
    p.add_argument("--max-queued-per-client", type=int, default=10, metavar="N",
                   help="queued jobs one client may have (clients told apart by the X-Restyle-Client header, "
                        "else by address); more are refused with 429 (default 10)")
    p.add_argument("--models", metavar="DIR",
                   help="offer the fast models (restyle train's *.pt files) in DIR on the page and API, besides the "
                        "bundled ones (default: the bundled ones only); read when the server starts")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads per CPU worker (default: the CPUs shared)")
    p.add_argument("--checkpoint-every", type=int, default=20, metavar="N",
                   help="save each running job's image every N iterations, to resume from (default 20)")
    p.add_argument("--rebuild-queue", action="store_true",
                   help="move the job database aside and rebuild it from the job folders (finished jobs keep their "
                        "results; the others queue again), then serve: for a database that is lost or unreadable")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="server log detail (default info: one line per request)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from restyle.server import Settings, serve
        from restyle.server.settings import default_data_dir, parse_devices
    except ImportError as err:
        raise ConfigError(f"restyle serve needs the server extra ({err.name} is missing): "
                          "pip install 'restyle[server]'") from None
    settings = Settings(host=args.host, port=args.port, data=args.data or default_data_dir(),
                        devices=parse_devices(args.device), token=args.token, max_queue=args.max_queue,
                        max_upload_mb=args.max_upload_mb, threads=args.threads, checkpoint_every=args.checkpoint_every,
                        max_size=args.max_size, max_iterations=args.max_iterations,
                        max_job_seconds=args.max_job_seconds, max_queued_per_client=args.max_queued_per_client,
                        models=args.models)
    serve(settings, log_level=args.log_level, rebuild_queue=args.rebuild_queue)
    return 0
