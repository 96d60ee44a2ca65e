"""Where jobs live: an SQLite database under ``--data`` (every state change committed before it is
answered or acted on), uploads content-addressed by SHA-256, and a folder per job for its output.

The server process is the only writer of the database; worker processes only write files in their
job's folder. A lock file keeps a second server off the same data folder (the kernel drops the lock
when its process dies, however it dies).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Literal

from restyle.errors import ConfigError
from restyle.server.records import FINAL, STATUSES, ImageInput, JobInputs, JobRecord, JobStatus

SCHEMA_VERSION = 1
DATABASE = "jobs.sqlite3"
#: What a job's folder keeps of its submission, so that ``restyle serve --rebuild-queue`` can queue it again.
JOB_FILE = "job.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    options TEXT NOT NULL,        -- JSON: the options the client gave
    preset TEXT,
    config TEXT NOT NULL,         -- JSON: the full Config the job runs with
    inputs TEXT NOT NULL,         -- JSON: {"content": {...}, "styles": [{...}, ...]}
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,   -- times it was handed to a worker
    crashes INTEGER NOT NULL DEFAULT 0,    -- times its worker died under it
    cancel INTEGER NOT NULL DEFAULT 0,     -- cancel asked for while it ran
    finish INTEGER NOT NULL DEFAULT 0,     -- finish now asked for while it ran (kept across restarts)
    progress TEXT,                -- JSON: the last progress saved (at checkpoints and at the end)
    resumed_from INTEGER,         -- the iteration its last attempt resumed from (a saved image)
    device TEXT,
    idempotency_key TEXT UNIQUE,
    parent TEXT,                  -- the job it was run again from
    client TEXT                   -- who queued it (X-Restyle-Client, else the address), for per-client caps
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _lock(handle: IO[str], root: Path) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(f"another restyle serve (pid {pid}) uses the data folder '{root}'; "
                          "stop it or give another --data") from None


def unreadable(root: Path, err: BaseException) -> str:
    """The one line ``restyle serve`` stops with when the job database cannot be read."""
    return (f"the job database '{Path(root) / DATABASE}' cannot be read ({' '.join(str(err).split())}); "
            "restyle serve --rebuild-queue moves it aside and rebuilds the queue from the job folders (docs/server.md)")


class QueueFull(Exception):
    """The queue holds ``--max-queue`` jobs already."""


class Store:
    """The job database and the files under the data folder (thread-safe)."""

    def __init__(self, root: Path, examples: dict[str, Path] | None = None):
        self.root = Path(root)
        self.examples = dict(examples or {})
        for sub in ("uploads/tmp", "jobs", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._lock_file = self._take_lock()
        try:
            self._open()
        except sqlite3.DatabaseError as err:
            self._lock_file.close()
            raise ConfigError(unreadable(self.root, err)) from None

    def _open(self) -> None:
        self._db = sqlite3.connect(self.root / DATABASE, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._lock = threading.RLock()
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in (("client", "TEXT"), ("finish", "INTEGER NOT NULL DEFAULT 0")):
            if name not in columns:  # a data folder from before
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        for stale in (self.root / "uploads" / "tmp").iterdir():  # uploads cut off by a kill
            with suppress(OSError):
                stale.unlink()

    @staticmethod
    def check_free(root: Path) -> None:
        """A one-line error now if another server holds the data folder ``root`` (checked again at open)."""
        if (Path(root) / "server.lock").exists():
            with open(Path(root) / "server.lock", "a+") as handle:
                _lock(handle, Path(root))
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def check_readable(root: Path) -> None:
        """A one-line error now if the job database under ``root`` exists and cannot be read."""
        database = Path(root) / DATABASE
        if not database.exists():
            return
        try:
            with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
                verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise ConfigError(unreadable(root, err)) from None
        if verdict != "ok":
            raise ConfigError(unreadable(root, verdict))

    def _take_lock(self) -> IO[str]:
        handle = open(self.root / "server.lock", "a+")
        _lock(handle, self.root)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- jobs ---------------------------------------------------------------------------------
    def create(self, *, options: dict[str, Any], preset: str | None, config: dict[str, Any],
               inputs: JobInputs, max_queue: int, idempotency_key: str | None = None,
               parent: str | None = None, client: str | None = None,
               max_per_client: int | None = None) -> tuple[JobRecord, bool]:
        """Queue a job; returns (job, created). With an ``idempotency_key`` already used, the job made
        then is returned (created False). Raises :class:`QueueFull` when ``max_queue`` jobs wait, or
        when ``client`` has ``max_per_client`` jobs waiting."""
        with self.transaction() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row is not None:
                    return JobRecord.from_row(row), False
            waiting = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
            if waiting >= max_queue:
                raise QueueFull(f"the queue is full ({waiting} jobs waiting); try again later")
            if client is not None and max_per_client is not None:
                mine = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND client = ?",
                                  (client,)).fetchone()[0]
                if mine >= max_per_client:
                    raise QueueFull(f"you have {mine} jobs waiting, this server's cap per client "
                                    f"(--max-queued-per-client); wait for one to start")
            job_id = secrets.token_hex(6)
            db.execute("INSERT INTO jobs (id, status, created, options, preset, config, inputs, idempotency_key, "
                       "parent, client) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, time.time(), json.dumps(options), preset, json.dumps(config), inputs.to_json(),
                        idempotency_key, parent, client))
            record = JobRecord.from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
            self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
            _write_atomic(self.job_dir(job_id) / JOB_FILE, json.dumps(record.submission()))
            return record, True

    def restore(self, values: dict[str, Any]) -> None:
        """Insert a job rebuilt from its folder (:mod:`restyle.server.rebuild`): the columns given."""
        values = {**values, "progress": json.dumps(values["progress"]) if values.get("progress") else None}
        names = ", ".join(values)
        with self.transaction() as db:
            db.execute(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                       tuple(values.values()))

    def get(self, job_id: str) -> JobRecord | None:
        """The job ``job_id`` (None: no such job); a queued one with its place in the queue."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            position = None
            if row["status"] == "queued":
                position = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq <= ?",
                                            (row["seq"],)).fetchone()[0]
            return JobRecord.from_row(row, position)

    def page(self, *, limit: int = 20, before: int | None = None, status: str | None = None) -> list[JobRecord]:
        """Jobs newest first; ``before``: only those older than that ``seq`` (the previous page's last)."""
        where: list[str] = []
        args: list[Any] = []
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            return [JobRecord.from_row(r) for r in self._db.execute(sql, (*args, limit)).fetchall()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {r[0]: r[1] for r in rows}

    def claim_next(self, device: str) -> JobRecord | None:
        """The oldest queued job, now running on ``device`` (or None)."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, device = ?, "
                       "started = COALESCE(started, ?) WHERE id = ?", (device, time.time(), row["id"]))
            return JobRecord.from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def update(self, job_id: str, **values: Any) -> None:
        """Set columns (``progress`` as a dict) of a job."""
        if "progress" in values and values["progress"] is not None:
            values["progress"] = json.dumps(values["progress"])
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.transaction() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))

    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None,
               progress: dict[str, Any] | None = None) -> None:
        assert status in FINAL
        with self.transaction() as db:
            db.execute("UPDATE jobs SET status = ?, error = ?, finished = ?, progress = COALESCE(?, progress) "
                       "WHERE id = ? AND status = 'running'",
                       (status, error, time.time(), json.dumps(progress) if progress else None, job_id))

    def requeue(self, job_id: str, *, crashed: bool, max_crashes: int, reason: str) -> str:
        """A running job whose worker stopped under it: queued again (first in line), or failed once it
        has crashed ``max_crashes`` times, or cancelled if that was asked for. Returns the new status."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] != "running":
                return row["status"] if row is not None else "gone"
            crashes = row["crashes"] + (1 if crashed else 0)
            if row["cancel"]:
                status, error = "cancelled", None
            elif crashes >= max_crashes:
                status, error = "failed", f"{reason} ({crashes} times); not retried"
            else:
                status, error = "queued", None
            db.execute("UPDATE jobs SET status = ?, crashes = ?, error = ?, finished = ? WHERE id = ?",
                       (status, crashes, error, time.time() if status != "queued" else None, job_id))
            return str(status)

    def recover(self) -> list[str]:
        """At start: jobs left running by a server that was stopped or killed are queued again
        (cancelled if that was asked for). Returns their ids."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = 'running'").fetchall()]
            db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE status = 'running' AND cancel = 1",
                       (time.time(),))
            db.execute("UPDATE jobs SET status = 'queued' WHERE status = 'running'")
        return ids

    def request_cancel(self, job_id: str) -> str:
        """Cancel a job: a queued one at once; a running one is marked (its worker is told). Returns its status."""
        return self._request(job_id, "cancel")

    def request_finish(self, job_id: str) -> str:
        """Mark a running job to finish now (its worker is told; a worker that resumes it after a
        restart finishes it at its first row). Returns its status (only a running job is marked)."""
        return self._request(job_id, "finish")

    def _request(self, job_id: str, flag: Literal["cancel", "finish"]) -> str:
        """Set a running job's ``flag`` column, which its worker reads; a queued job asked to
        cancel is cancelled at once. Returns the job's status then, or "gone"."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return "gone"
            if row["status"] == "queued" and flag == "cancel":
                db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ?", (time.time(), job_id))
                return "cancelled"
            if row["status"] == "running":
                db.execute(f"UPDATE jobs SET {flag} = 1 WHERE id = ?", (job_id,))  # noqa: S608 - a fixed column name
            return str(row["status"])

    def delete(self, job_id: str) -> None:
        """Forget a finished job and its files (uploads no other job uses go too)."""
        with self.transaction() as db:
            row = db.execute("SELECT inputs FROM jobs WHERE id = ?", (job_id,)).fetchone()
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            used = {i.sha256 for r in db.execute("SELECT inputs FROM jobs").fetchall()
                    for i in JobInputs.from_json(r[0]).images()}
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        for item in JobInputs.from_json(row[0]).images() if row is not None else []:
            if item.example is None and item.sha256 not in used:
                with suppress(OSError):
                    self.upload_path(item.sha256).unlink()

    # ---- files --------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / "jobs" / job_id

    def input_path(self, item: ImageInput) -> Path:
        """The file of a job input: a bundled example by name, or an upload by its SHA-256."""
        if item.example is not None:
            return self.examples[item.example]
        return self.upload_path(item.sha256)

    def upload_path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 digest")
        return self.root / "uploads" / sha256[:2] / sha256

    def stage_upload(self, stream: IO[bytes], max_bytes: int) -> tuple[Path, str, int] | None:
        """Copy an upload into a temporary file, hashing it: (path, SHA-256, size), or None when it is
        over ``max_bytes`` (the partial file is removed)."""
        digest, size = hashlib.sha256(), 0
        fd, name = tempfile.mkstemp(dir=self.root / "uploads" / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                while size <= max_bytes and (chunk := stream.read(1 << 20)):
                    size += len(chunk)
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            with suppress(OSError):
                os.unlink(name)
            raise
        if size > max_bytes:
            os.unlink(name)
            return None
        return Path(name), digest.hexdigest(), size

    def keep_upload(self, staged: Path, sha256: str) -> Path:
        """Move a checked upload to its content address (a copy already there is kept)."""
        target = self.upload_path(sha256)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            staged.unlink()
        else:
            os.replace(staged, target)
        return target


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
