"""The server's settings (``restyle serve``'s options) and their checks; torch-free."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from restyle.config import is_device
from restyle.errors import ConfigError

#: Environment variable a token may be given in (kept out of ``ps`` and shell history).
TOKEN_ENV = "RESTYLE_TOKEN"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/restyle/server`` (``~/.local/share/restyle/server`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "restyle" / "server"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """Everything ``restyle serve`` is told. ``devices`` is one worker process per entry (``None``:
    one per CUDA GPU, else one on the CPU); an empty list runs no workers (jobs stay queued)."""

    host: str = "127.0.0.1"
    port: int = 8000
    data: Path = field(default_factory=default_data_dir)
    devices: list[str] | None = None
    token: str | None = None
    max_queue: int = 100  # queued jobs (not counting running ones); 429 beyond
    max_upload_mb: float = 20.0  # per uploaded image; 413 beyond
    max_styles: int = 8
    threads: int | None = None  # torch threads per CPU worker (None: the CPUs shared among them)
    checkpoint_every: int = 20  # iterations between saved images an interrupted job resumes from
    preview_every: int = 0  # iterations between live previews (0: about 40 per run)
    max_crashes: int = 3  # a job whose worker dies this many times fails instead of running again
    cancel_grace: float = 15.0  # seconds a worker has to stop a cancelled job before it is killed
    # Caps that keep one request from tying up a shared server (docs/server.md)
    max_size: int = 2048  # longest side of a job's output, px; 422 beyond
    max_iterations: int = 1000  # a job's -n; 422 beyond (the automatic stop is always accepted)
    max_job_seconds: float = 1800.0  # a running job is stopped (failed, its last image kept) after this
    max_queued_per_client: int = 10  # queued jobs one client may have (by X-Restyle-Client, else address); 429
    models: Path | None = None  # a folder of fast models (*.pt) offered besides the bundled ones (GET /api/models)

    def __post_init__(self) -> None:
        self.data = Path(self.data).expanduser()
        if self.models is not None:
            self.models = Path(self.models).expanduser()
        if self.token is not None and not self.token.strip():
            self.token = None

    def check(self) -> None:
        """One-line errors for settings that cannot work, before anything starts."""
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(f"--host {self.host} makes the server reachable from other machines; "
                              f"give a --token (or set {TOKEN_ENV}) that every API call must carry")
        if self.token is not None and (len(self.token) < 8 or re.search(r"\s", self.token)):
            raise ConfigError("--token must be at least 8 characters, without spaces")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a port number (0-65535; 0 picks a free one)")
        for name in ("max_queue", "max_styles", "checkpoint_every", "max_crashes", "max_size", "max_iterations",
                     "max_job_seconds", "max_queued_per_client"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.max_upload_mb > 0:
            raise ConfigError("--max-upload-mb must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.models is not None and not self.models.is_dir():
            raise ConfigError(f"--models {self.models}: no such folder (it holds the fast models to offer, *.pt)")
        for device in self.devices or []:
            if not is_device(device):
                raise ConfigError(f"unknown device '{device}'; give cpu, cuda or cuda:N (one worker each)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def parse_devices(text: str | None) -> list[str] | None:
    """``--device`` text: ``auto`` (None), ``none`` (no workers) or a comma-separated list;
    ``cuda`` alone stands for ``cuda:0``; a device named twice runs two workers on it."""
    if text is None or text.strip().lower() == "auto":
        return None
    if text.strip().lower() == "none":
        return []
    devices = [d.strip().lower() for d in text.split(",") if d.strip()]
    return ["cuda:0" if d == "cuda" else d for d in devices]
