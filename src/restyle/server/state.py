"""What a running server holds: its settings, the job store, the live hub and the worker pool; and the
public form of a job (``GET /api/jobs/{id}``, :class:`restyle.server.models.Job`)."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restyle import api
from restyle.errors import ConfigError
from restyle.server.hub import Hub
from restyle.server.models import Job, JobLinks, JobProgress
from restyle.server.pool import WorkerPool
from restyle.server.records import JobRecord
from restyle.server.settings import Settings
from restyle.server.store import Store

log = logging.getLogger("restyle.server")


@dataclass
class ServerState:
    settings: Settings
    store: Store
    hub: Hub
    pool: WorkerPool
    examples: dict[str, Path]
    devices: list[str]
    #: The fast models on offer (bundled, then ``--models DIR``'s), by the name a job gives.
    models: dict[str, api.FastModelInfo] = field(default_factory=dict)
    #: Every name a job may give: the models', and the styles of the bundled ones (as --fast-model).
    names: dict[str, api.FastModelInfo] = field(default_factory=dict)
    _thumb_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings, hub: Hub) -> ServerState:
        """Open the data folder, queue again what a stopped server left running, list the fast
        models (a file that is not one is left out with a line in the log), start the workers."""
        examples = api.example_images()
        models = {m.name: m for m in api.fast_models(settings.models, on_skip=log.warning)}
        names = api.model_names(list(models.values()))
        store = Store(settings.data, examples)
        store.recover()
        devices = resolve_devices(settings)
        state_box: list[ServerState] = []
        pool = WorkerPool(settings, store, hub, devices, lambda job_id: state_box[0].publish_status(job_id),
                          model_path=lambda name: offered_file(names, name))
        state = cls(settings, store, hub, pool, examples, devices, models=models, names=names)
        state_box.append(state)
        pool.start()
        return state

    def close(self) -> None:
        self.hub.close()
        self.pool.stop()
        self.store.close()

    # ---- jobs as clients see them ------------------------------------------------------------------
    def job(self, job_id: str) -> Job | None:
        record = self.store.get(job_id)
        return self.public(record) if record is not None else None

    def public(self, record: JobRecord) -> Job:
        """The job as clients see it: its live progress while it runs, and the links to its parts."""
        job_id, status = record.id, record.status
        live = self.hub.live(job_id) if status == "running" else None
        progress = (live or {}).get("progress") or record.progress
        base = f"/api/jobs/{job_id}"
        done = status == "done"
        links = JobLinks.model_validate({"self": base, "events": f"{base}/events"} | ({
            "result": f"{base}/result", "losses": f"{base}/losses.csv", "thumbnail": f"{base}/thumbnail"} if done else {}))
        return Job(
            id=job_id, status=status, created=_iso(record.created), started=_iso_or_none(record.started),
            finished=_iso_or_none(record.finished), position=record.position, progress=_progress(progress, status),
            options=record.options, preset=record.preset, config=record.config, inputs=record.inputs,
            error=record.error, attempts=record.attempts, resumed_from=record.resumed_from, device=record.device,
            parent=record.parent, cancel_requested=record.cancel and not record.final,
            finish_requested=record.finish and not record.final, links=links)

    def publish_status(self, job_id: str) -> None:
        """Tell the job's followers its status (and the job) as it is now."""
        job = self.job(job_id)
        if job is not None:
            self.hub.publish(job_id, "status", {"status": job.status, "job": job.as_json()})

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


def _progress(progress: dict[str, Any] | None, status: str) -> JobProgress | None:
    if not progress:
        return None
    out = JobProgress.model_validate({k: progress.get(k) for k in JobProgress.model_fields})
    if status == "done":
        out = out.model_copy(update={"fraction": 1.0, "eta": 0.0})
    return out


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def _iso_or_none(t: float | None) -> str | None:
    return _iso(t) if t is not None else None


def offered_file(models: dict[str, Any], name: str) -> str | None:
    """What a job's worker is given for a model name on offer: a bundled name as it is (the worker
    resolves it as ``--fast-model`` does), a ``--models DIR`` model as its file; None: not offered."""
    if name not in models:
        return None
    return name if models[name].bundled else str(models[name].path)
