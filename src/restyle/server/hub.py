"""The live state of running jobs (progress, loss curve, latest preview) and the fan-out of their
events to the pages and clients following them (``GET /api/jobs/{id}/events``).

Events arrive on the worker pool's thread and are handed to each subscriber's asyncio queue on its
own event loop. A subscriber that falls behind loses progress and preview events, never a status.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

MAX_POINTS = 1000  # loss-curve points kept per job (halved, every other one, when exceeded)
QUEUE_SIZE = 256


@dataclass
class Live:
    """What a page joining a running job needs at once."""

    started: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    curve: list[list[float]] = field(default_factory=list)  # [iteration, total, content, style]
    preview: dict[str, Any] | None = None  # {"iteration", "image": a data: URL}
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"started": self.started, "progress": self.progress, "curve": self.curve, "preview": self.preview,
                "notes": self.notes}


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None]


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, Live] = {}
        self._subs: dict[str, set[Subscriber]] = {}
        self._ids = itertools.count(1)
        self.closed = False

    def subscribe(self, job_id: str) -> Subscriber:
        sub = Subscriber(asyncio.get_running_loop(), asyncio.Queue(QUEUE_SIZE))
        with self._lock:
            self._subs.setdefault(job_id, set()).add(sub)
            if self.closed:
                sub.queue.put_nowait(None)
        return sub

    def unsubscribe(self, job_id: str, sub: Subscriber) -> None:
        with self._lock:
            subs = self._subs.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[job_id]

    def live(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            live = self._live.get(job_id)
            return live.as_dict() if live is not None else None

    def publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        """Record an event of a job (``started``, ``progress``, ``preview``, ``note`` or ``status``) and
        pass it on. A ``status`` that is final ends the job's live state."""
        with self._lock:
            data = self._record(job_id, kind, data)
            item = (next(self._ids), kind, data)
            subs = list(self._subs.get(job_id, ()))
        for sub in subs:
            with _closed_loop():
                sub.loop.call_soon_threadsafe(_offer, sub.queue, item)

    def _record(self, job_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        if kind == "status":
            if data.get("status") in ("done", "failed", "cancelled", "queued"):
                self._live.pop(job_id, None)
            return data
        live = self._live.setdefault(job_id, Live())
        if kind == "started":
            live.started, live.progress, live.preview = data, None, None
            live.curve = [list(p) for p in data.get("curve", [])]
        elif kind == "progress":
            live.progress = data
            losses = data.get("losses", {})
            live.curve.append([data["iteration"], losses.get("total", 0.0), losses.get("content", 0.0),
                               losses.get("style", 0.0)])
            if len(live.curve) > MAX_POINTS:
                live.curve = live.curve[::2]
        elif kind == "preview":
            data = {"iteration": data["iteration"], "label": data.get("label", ""),
                    "image": "data:image/jpeg;base64," + base64.b64encode(data["jpeg"]).decode("ascii")}
            live.preview = data
        elif kind == "note":
            live.notes.append(data["note"])
        return data

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        with self._lock:
            self.closed = True
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            with _closed_loop():
                sub.loop.call_soon_threadsafe(_offer, sub.queue, None)


def _offer(q: asyncio.Queue[Any], item: Any) -> None:
    """Put without waiting; when full, progress and previews give way to a status or the end."""
    try:
        q.put_nowait(item)
    except asyncio.QueueFull:
        if item is None or item[1] == "status":
            while not q.empty():
                q.get_nowait()
            q.put_nowait(item)


class _closed_loop:
    """Ignore the RuntimeError of a subscriber whose event loop has closed."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> bool:
        return kind is RuntimeError
