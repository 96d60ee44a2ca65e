"""A worker process: runs jobs on one device through :func:`restyle.api.stylize`, one at a time.

It talks to the server over two one-way pipes, in the dataclasses of :mod:`restyle.server.messages`.
Commands in: :class:`RunJob`, :class:`CancelJob`, :class:`FinishJob`, :class:`Stop`. Events out:
:class:`Ready`, then per job :class:`JobStarted`, :class:`JobProgressed`, :class:`JobPreview`,
:class:`JobCheckpoint` and :class:`JobNote`, and one of :class:`JobDone`, :class:`JobFailed`, :class:`JobCancelled`. When the
server goes away (its end of the command pipe closes, as when it is killed) the worker exits at once.

Every ``checkpoint_every`` iterations the image is saved in the job's folder (``checkpoint.png``, then
``checkpoint.json``, each replaced atomically) with the loss rows so far (``rows.jsonl``). A job that
runs again after its worker or the server died resumes from there: ``init`` = the saved image,
``iterations`` = those left. A coarse-to-fine run (``scales``, or ``multiscale`` from 512 px) saves
checkpoints in its last stage only, and resumes as one stage at that size; one that died in an
earlier stage starts again, as one Config cannot say "the rest of this stage, then the later ones".
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from restyle.config import Config
from restyle.errors import RestyleError, out_of_memory
from restyle.server.faults import storage_fault
from restyle.server.messages import (
    CancelJob,
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
    RunSummary,
    Stop,
    WorkerEvent,
)

Send = Callable[[WorkerEvent], None]


#: The universal preview's longest side: a preview, shown at most 640 px wide, with 0.56 of a 512 px
#: picture's pixels; its time to the page is measured by bench/preview.py.
PREVIEW_SIDE = 384

class Cancelled(Exception):
    """Raised from the event handler to stop a job that was cancelled."""


class TimeCap(Exception):
    """Raised from the event handler to stop a job that ran past the server's time cap."""


def main(commands: Connection, events: Connection, device: str, threads: int | None) -> None:
    """The worker process's entry point (spawned: a fresh interpreter)."""
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)  # read by torch when it is first imported, just below
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    from restyle import api

    jobs: queue.Queue[JobSpec | None] = queue.Queue()
    cancelled: set[str] = set()
    finishing: set[str] = set()  # jobs asked to end now with the picture so far

    def send(message: WorkerEvent) -> None:
        try:
            events.send(message)
        except (OSError, ValueError):  # the server is gone
            os._exit(0)

    def read_commands() -> None:
        while True:
            try:
                message = commands.recv()
            except (EOFError, OSError):  # the server is gone (killed, perhaps): stop now
                os._exit(0)
            match message:
                case RunJob(job=spec):
                    jobs.put(spec)
                case CancelJob(job_id=job_id):
                    cancelled.add(job_id)
                case FinishJob(job_id=job_id):
                    finishing.add(job_id)
                case Stop():
                    jobs.put(None)

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    runner = JobRunner(api, device, send, cancelled, finishing)
    send(Ready(pid=os.getpid(), device=device))
    while (job := jobs.get()) is not None:
        runner.run(job)


class JobRunner:
    """Runs one job after another on this process's device."""

    def __init__(self, api: Any, device: str, send: Send, cancelled: set[str], finishing: set[str]):
        self.api, self.device, self.send = api, device, send
        self.cancelled, self.finishing = cancelled, finishing  # job ids the command thread adds to
        self.notes = _Notes()
        logging.getLogger("restyle").addHandler(self.notes)

    def run(self, job: JobSpec) -> None:
        job_id, folder = job.id, Path(job.dir)
        done = folder / "done.json"
        if done.exists():  # finished just before the server stopped, before it heard: report it
            self.send(JobDone(job_id, RunSummary.from_dict(json.loads(done.read_text()))))
            return
        self.notes.start(job_id, self.send)
        if job.finish:  # asked for before the restart that made it run again
            self.finishing.add(job_id)
        try:
            summary = self._run(job, folder)
            _write_json(done, summary.as_dict())
            # A resumed job's PNG records the run that made it: init = the saved image (kept, so that
            # restyle run --from-image reproduces it) and the iterations that were left.
            for name in ("rows.jsonl", "checkpoint.json", *(() if summary.resumed_from else ("checkpoint.png",))):
                with suppress(OSError):
                    (folder / name).unlink()
            self.send(JobDone(job_id, summary))
        except Cancelled:
            self.send(JobCancelled(job_id))
        except TimeCap as cap:
            self.send(JobFailed(job_id, str(cap)))
        except RestyleError as err:
            message = str(err)
            for option, file in job.files.items():  # the model's name, not the server's file
                message = message.replace(file, str(job.config.get(option)))
            fault = storage_fault(err, "the result")
            self.send(JobFailed(job_id, fault, message) if fault else JobFailed(job_id, message))
        except Exception as err:  # noqa: BLE001 - reported as the job's error (MemoryError too); the worker goes on
            fault = storage_fault(err, "the result")
            message = out_of_memory(err, flags=False) or f"internal error: {type(err).__name__}: {' '.join(str(err).split())}"
            self.send(JobFailed(job_id, fault, message) if fault else JobFailed(job_id, message))
        finally:
            self.notes.stop()
            self.cancelled.discard(job_id)
            self.finishing.discard(job_id)
            if not done.exists():
                for name in ("checkpoint.png", "checkpoint.json"):
                    with suppress(OSError):
                        (folder / name).unlink()

    def _run(self, job: JobSpec, folder: Path) -> RunSummary:
        api, job_id = self.api, job.id

        def shown(text: str) -> str:  # what clients see names the model, not the server's file
            for option, file in job.files.items():
                text = text.replace(file, str(job.config.get(option)))
            return text

        at = _attempt(job, folder, self.device, api)
        offset, before, every = at.offset, at.before, job.preview_every
        rows_file = folder / "rows.jsonl"
        rows_file.write_text("".join(json.dumps(r) + "\n" for r in before))
        started = time.monotonic()

        def on_event(event: Any) -> None:
            if job_id in self.cancelled:
                raise Cancelled
            if isinstance(event, api.Progress) and event.image is not None:
                at.image = event.image
            if job.max_seconds is not None and time.monotonic() - started > job.max_seconds:
                kept = ""
                if at.image is not None:  # the last image, as the job's result
                    _write_bytes(folder / "result.png", api.encode_image(at.image))
                    kept = "; its last image is kept as the result"
                raise TimeCap(f"stopped after {job.max_seconds:g} s, this server's cap (--max-job-seconds){kept}")
            if isinstance(event, api.Finished):
                at.seconds = event.seconds
            if isinstance(event, api.Started):
                at.total = total = event.total + offset
                if len(event.stages) > 1:
                    at.last_scale = event.stages[-1]
                curve = [[r["iteration"], r["total"], r["content"], r["style"]] for r in before]
                started_event = {**api.event_dict(event), "model": shown(event.model),
                                 "notes": [shown(n) for n in event.notes]}
                self.send(JobStarted(job_id, {**started_event, "total": total, "resumed_from": offset or None,
                                              "curve": curve[:: max(1, len(curve) // 500)]}))
            elif isinstance(event, api.Progress):
                i, total = event.iteration + offset, event.total + offset
                progress = {**api.event_dict(event), "iteration": i, "total": total, "seconds": event.seconds + at.seconds0,
                            "fraction": min(1.0, (i + 1) / max(1, total))}
                self.send(JobProgressed(job_id, progress))
                if event.image is not None:
                    self._preview(job_id, event.image, i, total, every or max(1, total // 40), at)
                    # checkpoints in the last stage only: an earlier stage's image is of another size
                    last_stage = at.last_scale in (None, event.scale)
                    if last_stage and not at.one_pass and i and i % job.checkpoint_every == 0 and i < total - 1:
                        # the rows planned (Started's), not this row's estimate: a time limit shortens that one
                        _save_checkpoint(folder, api.encode_image(event.image), i, at.total, at.last_scale)
                        self.send(JobCheckpoint(job_id, progress))
                if job_id in self.finishing:  # "Finish now": this row's picture is the result
                    at.request = ""
                    raise api.FinishNow
                if at.limit is not None and event.seconds + at.seconds0 >= at.limit:
                    asked = api.FinishNow.at_time_limit(at.limit)
                    at.request = asked.why
                    raise asked

        def on_iteration(row: dict[str, float], image: Any) -> None:
            shifted = {k: float(v) for k, v in row.items()}
            shifted["iteration"] += offset
            shifted["seconds"] += at.seconds0
            at.rows.append(shifted)
            with open(rows_file, "a") as f:
                f.write(json.dumps(shifted) + "\n")

        config = Config.from_dict(at.values)
        if not offset and not at.one_pass:
            at.image = self._universal_preview(job_id, job, config)  # the result if the cap comes first
        result = api.stylize(job.content, list(job.styles), config, output=folder / "result.png", on_event=on_event,
                             on_iteration=on_iteration, plot=False)
        return self._summary(at, result, folder, shown)

    def _summary(self, at: _Attempt, result: Any, folder: Path, shown: Callable[[str], str]) -> RunSummary:
        """The job's summary of its finished run (and, for a resumed job, its whole loss CSV)."""
        api = self.api
        if at.offset:  # the CSV the run wrote has its own rows only: write the whole job's
            _write_text(folder / "result.losses.csv", api.loss_history_csv(at.before + at.rows))
        (folder / "thumb.jpg").write_bytes(api.encode_image(result.image, longest=320, format="jpeg"))
        last = (at.before + at.rows)[-1] if (at.before or at.rows) else {}
        final_loss = result.final_loss if math.isfinite(result.final_loss) else None  # a fast model: no loss
        reason = getattr(result, "stop_reason", "") or ""
        if at.offset and at.request is not None and not result.stopped_early and last:
            # this handler's request, in the job's numbering (not the attempt's); a resumed job runs one stage
            reason = api.finished_on_request(int(last["iteration"]), at.request)
        return RunSummary(iterations=int(last.get("iteration", 0)), final_loss=final_loss,
                          seconds=float(last.get("seconds", at.seconds)),
                          stopped_early=result.stopped_early, width=result.image.size[0], height=result.image.size[1],
                          notes=tuple(shown(n) for n in result.notes),
                          resumed_from=at.offset or None, device=result.device, precision=result.precision,
                          stop_reason=reason)

    def _preview(self, job_id: str, image: Any, i: int, total: int, every: int, at: _Attempt) -> None:
        now = time.monotonic()
        last = i == total - 1
        if i == 0 or last or (i % every == 0 and now - at.preview >= 0.25):
            at.preview = now
            data = self.api.encode_image(image, longest=640, format="jpeg", quality=80)
            self.send(JobPreview(job_id, i, data, f"iteration {i + 1} of {total}"))

    def _universal_preview(self, job_id: str, job: JobSpec, config: Any) -> Any:
        """The universal method's picture of the job at up to :data:`PREVIEW_SIDE` px (about a
        second), shown until the optimiser's first; skipped where that method cannot run it (no
        decoder installed, a mask it refuses). Its pixels, for a job stopped before the optimiser's
        first picture."""
        api = self.api
        size = None if config.size is None else min(config.size, PREVIEW_SIDE)
        # the full transfer: the page's strength is the optimiser's (its 0.5 is the default style weight)
        preview = config.replace(method="universal", method_options={}, iterations=None, size=size, scales=None,
                                 strength=None)
        try:
            result = api.stylize(job.content, list(job.styles), preview)
        except RestyleError as err:
            logging.getLogger("restyle.server").info("job %s: no universal preview (%s)", job_id, err)
            return None
        data = api.encode_image(result.image, longest=640, format="jpeg", quality=80)
        self.send(JobPreview(job_id, -1, data, "universal preview; the optimiser's pictures follow"))
        return result.pixels if size == config.size else None


@dataclass
class _Attempt:
    """One attempt at a job: where it starts (a resumed job: from its checkpoint) and what its event
    handlers keep between events, in the job's numbering of iterations."""

    values: dict[str, Any]  # the run's options
    one_pass: bool  # a one-pass method's job: it starts afresh (a forward pass, a --refine within the cap)
    offset: int = 0  # the job's iteration this attempt starts from (0: from the start)
    before: list[dict[str, float]] = field(default_factory=list)  # the job's loss rows before it
    rows: list[dict[str, float]] = field(default_factory=list)  # this attempt's rows, shifted into the job's numbering
    limit: float | None = None  # the job's --time-limit, which this handler keeps for a resumed job
    #: the size of the job's last stage (None: one stage), kept across attempts: a resumed coarse-to-fine
    #: job runs one stage, and its checkpoints must still say which size that is
    last_scale: int | None = None
    total: int = 0  # the job's planned rows (Started's)
    preview: float = -1.0  # when the last preview went out (time.monotonic)
    image: Any = None  # the last picture: the result if the server's time cap comes first
    seconds: float = 0.0  # the run's seconds, as Finished gives them
    request: str | None = None  # this handler asked the run to finish now (FinishNow): its words ("" for none)

    @property
    def seconds0(self) -> float:
        """The seconds the job's earlier attempts ran."""
        return self.before[-1]["seconds"] if self.before else 0.0


def _attempt(job: JobSpec, folder: Path, device: str, api: Any) -> _Attempt:
    """This attempt at ``job``: afresh, or the rest of its last stage from the saved image (one stage at
    its size: the iterations that were left; under the automatic stop, stopping when finished again)."""
    values = dict(job.config, device=device)
    values.update(job.files)  # the files the server resolved the offered names to
    one_pass = api.method_for(api.Config.from_values(values)).one_pass
    offset, before, saved = (0, [], {}) if one_pass else resume_point(folder, values)
    if offset:
        left = None if values.get("iterations") is None else saved["total"] - 1 - offset
        values.update(init=str(folder / "checkpoint.png"), iterations=left)
        if saved.get("scale") is not None:
            values.update(size=saved["scale"], scales=None, multiscale=False)
    limit = values.get("time_limit") if offset else None
    if limit is not None:  # the job's --time-limit counts its earlier attempts' seconds: this handler keeps it
        values["time_limit"] = None
    return _Attempt(values, one_pass, offset, before, limit=limit, last_scale=saved.get("scale"))


def resume_point(folder: Path, values: dict[str, Any]) -> tuple[int, list[dict[str, float]], dict[str, Any]]:
    """(the iteration of the job's saved image, the loss rows before it, the checkpoint's note:
    the run's ``total`` rows and its last stage's ``scale``, None for one stage), or
    (0, [], {}) to start afresh."""
    try:
        saved = json.loads((folder / "checkpoint.json").read_text())
        # (a checkpoint of an earlier release has no total: the iterations asked for tell it; none under
        # the automatic stop, and then the job starts afresh)
        iteration, total = int(saved["iteration"]), int(saved.get("total", values["iterations"] + 1))
        rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0, [], {}
    before = [r for r in rows if r.get("iteration", -1) < iteration]
    if not (0 < iteration < total - 1) or len(before) != iteration or not (folder / "checkpoint.png").is_file():
        return 0, [], {}
    return iteration, before, {**saved, "total": total}


def _save_checkpoint(folder: Path, png: bytes, iteration: int, total: int, scale: int | None) -> None:
    """The image first, then the note that names its iteration, the run's rows and (coarse to
    fine) the last stage's size (each replaced atomically)."""
    tmp = folder / ".checkpoint.png.tmp"
    tmp.write_bytes(png)
    os.replace(tmp, folder / "checkpoint.png")
    _write_json(folder / "checkpoint.json", {"iteration": iteration, "total": total, "scale": scale,
                                             "time": time.time()})


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json(path: Path, value: Any) -> None:
    _write_text(path, json.dumps(value))


class _Notes(logging.Handler):
    """Sends restyle's notices during a job to the server as the job's ``note`` messages."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.job: str | None = None
        self.send: Send | None = None

    def start(self, job_id: str, send: Send) -> None:
        self.job, self.send = job_id, send

    def stop(self) -> None:
        self.job = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.job is not None and self.send is not None:
            self.send(JobNote(self.job, record.getMessage()))
