"""What a running server holds: its settings, the job store, the live hub and the worker pool; and the
public form of a job (``GET /api/jobs/{id}``)."""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restyle import api
from restyle.errors import ConfigError
from restyle.server.hub import Hub
from restyle.server.pool import WorkerPool
from restyle.server.settings import Settings
from restyle.server.store import FINAL, Store


@dataclass
class ServerState:
    settings: Settings
    store: Store
    hub: Hub
    pool: WorkerPool
    examples: dict[str, Path]
    devices: list[str]
    recovered: list[str] = field(default_factory=list)
    _thumb_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings, hub: Hub) -> ServerState:
        """Open the data folder, queue again what a stopped server left running, start the workers."""
        examples = api.example_images()
        store = Store(settings.data, examples)
        recovered = store.recover()
        devices = resolve_devices(settings)
        state_box: list[ServerState] = []
        pool = WorkerPool(settings, store, hub, devices, lambda job_id: state_box[0].job(job_id))
        state = cls(settings, store, hub, pool, examples, devices, recovered)
        state_box.append(state)
        pool.start()
        return state

    def close(self) -> None:
        self.hub.close()
        self.pool.stop()
        self.store.close()

    # ---- jobs as clients see them ------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any] | None:
        row = self.store.get(job_id)
        return self.public(row) if row is not None else None

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        job_id, status = row["id"], row["status"]
        live = self.hub.live(job_id) if status == "running" else None
        progress = (live or {}).get("progress") or row["progress"]
        base = f"/api/jobs/{job_id}"
        links = {"self": base, "events": f"{base}/events"}
        if status == "done":
            links |= {"result": f"{base}/result", "losses": f"{base}/losses.csv", "thumbnail": f"{base}/thumbnail"}
        out = {
            "id": job_id, "status": status, "created": _iso(row["created"]), "started": _iso(row["started"]),
            "finished": _iso(row["finished"]), "position": row.get("position"),
            "progress": _progress(progress, status), "options": row["options"], "preset": row["preset"],
            "config": row["config"], "inputs": row["inputs"], "error": row["error"], "attempts": row["attempts"],
            "resumed_from": row["resumed_from"], "device": row["device"], "parent": row["parent"],
            "cancel_requested": bool(row["cancel"]) and status not in FINAL, "links": links,
        }
        return out

    # ---- thumbnails ----------------------------------------------------------------------------------
    def thumbnail(self, path: Path, longest: int = 256) -> bytes:
        """A JPEG of the image at ``path`` (cached under the data folder by its content)."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        cached = self.settings.data / "cache" / f"{digest}-{longest}.jpg"
        if cached.is_file():
            return cached.read_bytes()
        data = api.encode_image(path, longest=longest, format="jpeg")
        with self._thumb_lock:
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        return data


def resolve_devices(settings: Settings) -> list[str]:
    """The workers' devices: ``--device`` as given (each CUDA one checked), or one per GPU, else the CPU."""
    available = api.available_devices()
    if settings.devices is None:
        return available
    for device in settings.devices:
        if device.startswith("cuda") and device not in available:
            found = ", ".join(d for d in available if d != "cpu") or "none"
            raise ConfigError(f"--device {device}: no such CUDA device here (CUDA devices: {found})")
    return list(settings.devices)


def _progress(progress: dict[str, Any] | None, status: str) -> dict[str, Any] | None:
    if not progress:
        return None
    keys = ("iteration", "total", "fraction", "eta", "losses", "scale", "seconds")
    out = {k: progress.get(k) for k in keys}
    if status == "done":
        out["fraction"], out["eta"] = 1.0, 0.0
    return out


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")
