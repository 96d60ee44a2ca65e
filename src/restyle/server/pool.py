"""The worker pool: one spawned process per device (:mod:`restyle.server.worker`), fed from the
job database by one thread of the server, which also relays their messages to the database and to
the live hub. A worker that dies (a crash in native code, the kernel's out-of-memory killer, a kill)
takes only itself down: its job is queued again (it resumes from its last saved image) and the
worker is started again, after a pause that grows while it keeps dying young. A job under which
workers die ``max_crashes`` times fails with that reason instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from restyle import api
from restyle.errors import killed_hint
from restyle.server import worker
from restyle.server.faults import storage_fault
from restyle.server.hub import Hub
from restyle.server.messages import (
    CancelJob,
    Command,
    FinishJob,
    JobCancelled,
    JobCheckpoint,
    JobDone,
    JobFailed,
    JobNote,
    JobPreview,
    JobProgressed,
    JobSpec,
    JobStarted,
    Ready,
    RunJob,
    WorkerEvent,
)
from restyle.server.records import JobStatus
from restyle.server.settings import Settings
from restyle.server.store import Store

log = logging.getLogger("restyle.server")


@dataclass(eq=False)
class Worker:
    device: str
    threads: int | None
    process: BaseProcess | None = None
    commands: Connection | None = None
    events: Connection | None = None
    ready: bool = False
    job: str | None = None
    progress: dict[str, Any] | None = None
    spawned: float = 0.0
    next_start: float = 0.0
    restarts: int = 0
    cancel_at: float | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: Command) -> bool:
        with self.send_lock:
            if self.commands is None:
                return False
            try:
                self.commands.send(message)
                return True
            except (OSError, ValueError):
                return False

    def describe(self) -> dict[str, Any]:
        state = "busy" if self.job else "idle" if self.ready else "starting" if self.process else "restarting"
        return {"device": self.device, "pid": self.process.pid if self.process else None, "state": state,
                "job": self.job, "restarts": self.restarts}


class WorkerPool:
    def __init__(self, settings: Settings, store: Store, hub: Hub, devices: list[str],
                 publish_status: Callable[[str], None], model_path: Callable[[str], str | None] = lambda name: None):
        """``model_path(name)``: the file of the fast model a job names, None when none is on offer."""
        self.settings, self.store, self.hub, self._status = settings, store, hub, publish_status
        self._model_path = model_path
        cpu_workers = sum(d == "cpu" for d in devices) or 1
        threads = settings.threads or max(1, api.available_cpus() // cpu_workers)
        self.workers = [Worker(d, threads if d == "cpu" else None) for d in devices]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="restyle-workers", daemon=True)

    # ---- called from the server's request threads ----------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: hand it to an idle worker now."""
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass  # already woken (the buffer is full) or stopping

    def cancel(self, job_id: str) -> None:
        for w in self.workers:
            if w.job == job_id:
                w.cancel_at = time.monotonic()
                w.send(CancelJob(job_id))

    def finish(self, job_id: str) -> None:
        """Ask the worker running ``job_id`` to end it now with the picture so far."""
        for w in self.workers:
            if w.job == job_id:
                w.send(FinishJob(job_id))

    def describe(self) -> list[dict[str, Any]]:
        return [w.describe() for w in self.workers]

    def stop(self) -> None:
        """Stop the workers; the jobs they were running stay 'running' and run again at the next start."""
        self._stopping = True
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for w in self.workers:
            if w.process is not None and w.process.is_alive():
                w.process.terminate()
        for w in self.workers:
            if w.process is not None:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
            self._close(w)
        self._wake_r.close()
        self._wake_w.close()

    # ---- the pool's thread ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping:
            try:
                self._step()
            except Exception as err:  # noqa: BLE001 - the pool must outlive any one bad message
                if storage_fault(err):  # a full disk: the queue waits for room (jobs stay queued)
                    log.error("worker pool: cannot update the job database: %s (continuing)", err)
                else:
                    log.exception("restyle: worker pool error (continuing)")
                time.sleep(0.5)

    def _step(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.process is None and now >= w.next_start:
                try:
                    self._spawn(w)
                except Exception as err:  # noqa: BLE001 - e.g. an unguarded __main__ under spawn: try later
                    w.restarts += 1
                    w.next_start = now + min(30.0, 0.5 * 2.0 ** min(w.restarts, 6))
                    log.error("restyle: cannot start a worker on %s: %s: %s (trying again in %.0f s)", w.device,
                              type(err).__name__, " ".join(str(err).split())[:200], w.next_start - now)
            if w.job and w.cancel_at is not None and now - w.cancel_at > self.settings.cancel_grace and w.process:
                log.warning("restyle: worker %s did not stop cancelled job %s; killing it", w.device, w.job)
                w.process.kill()
                w.cancel_at = None
        self._dispatch()
        owners: dict[Any, Worker] = {}
        for w in self.workers:
            if w.process is not None and w.events is not None:
                owners[w.events] = w
                owners[w.process.sentinel] = w
        for ready in wait([self._wake_r, *owners], timeout=0.5):
            if ready is self._wake_r:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
                continue
            w = owners[ready]
            if w.process is None:
                continue
            if ready is w.events:
                self._receive(w)
            elif not w.process.is_alive():
                self._died(w)

    def _spawn(self, w: Worker) -> None:
        ctx = multiprocessing.get_context("spawn")
        commands_r, commands_w = ctx.Pipe(duplex=False)
        events_r, events_w = ctx.Pipe(duplex=False)
        process = ctx.Process(target=worker.main, args=(commands_r, events_w, w.device, w.threads), daemon=True,
                              name=f"restyle-worker-{w.device}")
        process.start()
        commands_r.close()
        events_w.close()
        w.process, w.commands, w.events = process, commands_w, events_r
        w.ready, w.job, w.spawned, w.cancel_at = False, None, time.monotonic(), None

    def _dispatch(self) -> None:
        for w in self.workers:
            if self._stopping or not w.ready or w.job is not None:
                continue
            job = self.store.claim_next(w.device)
            if job is None:
                return
            names = {f: job.config[f] for f in api.listed_fields() if job.config.get(f)}
            files = {f: self._model_path(n) for f, n in names.items()}
            gone = [n for f, n in names.items() if files[f] is None]
            if gone:  # a model no longer on offer (the server restarted without it)
                self.store.finish(job.id, "failed", error=f"model '{gone[0]}' is no longer offered by this server")
                self._status(job.id)
                continue
            spec = JobSpec(id=job.id, dir=str(self.store.job_dir(job.id)), config=job.config,
                           files={f: p for f, p in files.items() if p is not None},
                           content=str(self.store.input_path(job.inputs.content)),
                           styles=tuple(str(self.store.input_path(s)) for s in job.inputs.styles),
                           checkpoint_every=self.settings.checkpoint_every,
                           preview_every=self.settings.preview_every,
                           max_seconds=self.settings.max_job_seconds, finish=job.finish)
            w.job, w.progress, w.cancel_at = job.id, None, None
            if not w.send(RunJob(spec)):  # it died just now: the job waits for the next worker
                self.store.requeue(job.id, crashed=False, max_crashes=self.settings.max_crashes, reason="")
                w.job = None
                continue
            self._status(job.id)

    def _receive(self, w: Worker) -> None:
        assert w.events is not None
        try:
            while w.events.poll():
                self._handle(w, w.events.recv())
        except (EOFError, OSError):  # it is exiting; its sentinel says when it is gone
            if w.process is not None:
                w.process.join(timeout=2)
                if not w.process.is_alive():
                    self._died(w)

    def _handle(self, w: Worker, message: WorkerEvent) -> None:
        if isinstance(message, Ready):
            w.ready = True
            return
        job_id = message.job_id
        if job_id != w.job:
            return  # a stale message of a job it no longer runs
        match message:
            case JobStarted(event=event):
                if message.resumed_from is not None:
                    self.store.update(job_id, resumed_from=message.resumed_from)
                self.hub.publish(job_id, "started", event)
            case JobProgressed(progress=progress):
                w.progress = progress
                self.hub.publish(job_id, "progress", progress)
            case JobPreview(iteration=iteration, jpeg=jpeg, label=label):
                self.hub.publish(job_id, "preview", {"iteration": iteration, "jpeg": jpeg, "label": label})
            case JobNote(note=note):
                self.hub.publish(job_id, "note", {"note": note})
            case JobCheckpoint(progress=progress):
                self.store.update(job_id, progress=progress)
            case JobDone(summary=summary):
                # without progress, it had finished before a restart: only the totals
                final = w.progress or {"iteration": summary.iterations, "total": summary.iterations + 1,
                                       "fraction": 1.0, "eta": 0.0, "seconds": summary.seconds}
                if summary.stop_reason:
                    final = {**final, "stop_reason": summary.stop_reason}
                self.store.update(job_id, resumed_from=summary.resumed_from)
                self._finished(w, job_id, "done", None, final)
            case JobFailed(error=error, detail=detail):
                if detail:
                    log.error("job %s failed: %s (its client is told: %s)", job_id, detail, error)
                self._finished(w, job_id, "failed", error, w.progress)
            case JobCancelled():
                self._finished(w, job_id, "cancelled", None, w.progress)

    def _finished(self, w: Worker, job_id: str, status: JobStatus, error: str | None,
                  progress: dict[str, Any] | None) -> None:
        self.store.finish(job_id, status, error=error, progress=progress)
        w.job, w.progress, w.cancel_at = None, None, None
        self._status(job_id)

    def _died(self, w: Worker) -> None:
        assert w.process is not None
        if w.events is not None:  # what it said before it died counts (a job it finished, say)
            try:
                while w.events.poll():
                    self._handle(w, w.events.recv())
            except (EOFError, OSError):
                pass
        w.process.join(timeout=1)
        code = w.process.exitcode
        reason = _death(code)
        if w.job is not None:
            status = self.store.requeue(w.job, crashed=True, max_crashes=self.settings.max_crashes, reason=reason)
            log.warning("restyle: worker on %s %s while running job %s; the job is %s", w.device, reason, w.job,
                        "queued again" if status == "queued" else status)
            self._status(w.job)
        elif not self._stopping:
            log.warning("restyle: worker on %s %s", w.device, reason)
        young = time.monotonic() - w.spawned < 30
        w.restarts += 1
        w.next_start = time.monotonic() + (min(30.0, 0.5 * 2.0 ** min(w.restarts, 6)) if young else 0.5)
        self._close(w)

    def _close(self, w: Worker) -> None:
        for conn in (w.commands, w.events):
            if conn is not None:
                conn.close()
        w.process, w.commands, w.events, w.ready, w.job, w.progress = None, None, None, False, None, None


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = killed_hint(-code)
        return f"was killed ({name}{'; ' + hint if hint else ''})"
    return f"exited (code {code})"
