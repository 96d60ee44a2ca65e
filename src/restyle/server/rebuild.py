"""``restyle serve --rebuild-queue``: a new job database made from the job folders, for a data folder
whose database is lost or unreadable.

Every job's folder keeps its submission (``job.json``: options, config and images). A folder whose
run finished (``done.json`` and ``result.png``) comes back done, its result served as before; any
other comes back queued and runs again (from its saved image, where it has one). A folder without
``job.json`` is left as it is and named in the report. The old database is moved aside, not deleted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restyle.server.records import JobInputs
from restyle.server.store import DATABASE, JOB_FILE, Store


@dataclass
class Rebuilt:
    """What a rebuild did: where the old database went, the jobs back done and queued, the folders left."""

    moved_to: Path | None
    done: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def line(self) -> str:
        moved = f"the old database is {self.moved_to}; " if self.moved_to else ""
        left = f"; {len(self.left)} folder(s) without {JOB_FILE} left as they are: {', '.join(self.left[:5])}" \
            if self.left else ""
        return f"restyle: rebuilt the queue: {moved}{len(self.done)} job(s) done, {len(self.queued)} queued again{left}"


def rebuild(root: Path, examples: dict[str, Path] | None = None) -> Rebuilt:
    """Move ``root``'s job database aside and make a new one from its job folders."""
    root = Path(root)
    Store.check_free(root)
    moved = _move_aside(root)
    report = Rebuilt(moved)
    jobs = []
    for folder in sorted((root / "jobs").iterdir()) if (root / "jobs").is_dir() else []:
        kept = _read(folder / JOB_FILE)
        if not folder.is_dir() or kept is None or kept.get("id") != folder.name:
            if folder.is_dir():
                report.left.append(folder.name)
            continue
        jobs.append((kept, folder))
    store = Store(root, examples)
    try:
        for kept, folder in sorted(jobs, key=lambda item: str(item[0].get("created", ""))):
            try:
                values = _columns(kept, folder)
            except (KeyError, TypeError, ValueError):  # a job.json that does not parse: the folder is left
                report.left.append(folder.name)
                continue
            store.restore(values)
            (report.done if values["status"] == "done" else report.queued).append(values["id"])
    finally:
        store.close()
    return report


def _move_aside(root: Path) -> Path | None:
    database = root / DATABASE
    if not database.exists():
        return None
    target = database.with_name(f"{DATABASE}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{database}{suffix}")
        if part.exists():
            part.rename(f"{target}{suffix}")
    return target


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _columns(kept: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The row of a job from its folder: done when its run finished, else queued."""
    JobInputs.model_validate(kept["inputs"])  # a folder whose inputs do not parse fails here, loudly
    values: dict[str, Any] = {
        "id": kept["id"], "created": float(kept["created"]), "options": json.dumps(kept.get("options") or {}),
        "preset": kept.get("preset"), "config": json.dumps(kept.get("config") or {}),
        "inputs": json.dumps(kept["inputs"]), "parent": kept.get("parent"),
        "idempotency_key": kept.get("idempotency_key"), "status": "queued"}
    summary = _read(folder / "done.json")
    result = folder / "result.png"
    if summary is not None and result.is_file():
        iterations = int(summary.get("iterations", 0))
        values.update(status="done", finished=result.stat().st_mtime, started=float(kept["created"]), attempts=1,
                      device=summary.get("device"), resumed_from=summary.get("resumed_from"),
                      progress={"iteration": iterations, "total": iterations + 1, "fraction": 1.0, "eta": 0.0,
                                "seconds": summary.get("seconds"), "stop_reason": summary.get("stop_reason") or None})
    return values
