"""Specification of the server's inner parts: the messages between the worker pool and a worker
process survive the pipe (pickling) and are told apart by type; a data folder written in the table's
format loads as typed jobs; the server's modules import one another without a cycle, counting the
imports inside functions."""

from __future__ import annotations

import ast
import json
import pickle
import sqlite3
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from restyle.server import messages
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
)
from restyle.server.records import JobInputs, JobRecord
from restyle.server.store import Store

SERVER = Path(__file__).resolve().parents[2] / "src" / "restyle" / "server"

SPEC = JobSpec(id="abc123", dir="/data/jobs/abc123", config={"size": 32, "style_layers": {"block1_conv1": 1.0}},
               content="/data/uploads/aa/aa", styles=("/x/starry_night.jpg",), checkpoint_every=20, preview_every=0)
EVERY_MESSAGE = [
    RunJob(SPEC), CancelJob("abc123"), FinishJob("abc123"), Stop(), Ready(pid=42, device="cpu"),
    JobStarted("abc123", {"total": 3, "stages": [32], "resumed_from": 6, "curve": [[0, 1.0, 0.5, 0.5]]}),
    JobProgressed("abc123", {"iteration": 1, "total": 3, "losses": {"total": 1.0}}),
    JobPreview("abc123", 1, b"\xff\xd8jpeg"), JobCheckpoint("abc123", {"iteration": 2}), JobNote("abc123", "a note"),
    JobDone("abc123", RunSummary(iterations=2, seconds=1.5, final_loss=0.25, notes=("a note",), resumed_from=None)),
    JobFailed("abc123", "content image 'x': not found"), JobCancelled("abc123"),
]


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_crosses_the_pipe_whole_and_cannot_change(message):
    again = pickle.loads(pickle.dumps(message))
    assert again == message and type(again) is type(message)
    field = next(iter(vars(message)), None)
    if field is not None:
        with pytest.raises(FrozenInstanceError):
            setattr(message, field, None)


def test_each_message_kind_is_its_own_class():
    kinds = {type(m) for m in EVERY_MESSAGE}
    assert len(kinds) == len(EVERY_MESSAGE)
    assert JobStarted("j", {"resumed_from": 6}).resumed_from == 6 and JobStarted("j", {}).resumed_from is None
    assert set(messages.Command.__args__) == {RunJob, CancelJob, FinishJob, Stop}


def test_a_run_summary_reads_the_done_json_a_worker_wrote():
    summary = RunSummary(iterations=3, seconds=2.0, final_loss=1.5, stopped_early=False, width=32, height=21,
                         notes=("n",), resumed_from=None, device="cpu", precision="fp32",
                         stop_reason="finished on request at iteration 3")
    assert RunSummary.from_dict(json.loads(json.dumps(summary.as_dict()))) == summary
    assert summary.as_dict()["notes"] == ["n"]


def test_a_data_folder_from_before_finish_now_opens_and_its_running_jobs_can_be_finished(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:  # the table as it was before the finish column
        db.execute("ALTER TABLE jobs DROP COLUMN finish")
        image = {"name": "photo.png", "sha256": "ab" * 32, "bytes": 2600, "width": 40, "height": 27, "example": None}
        db.execute("INSERT INTO jobs (id, status, created, options, config, inputs) VALUES ('abc123', 'running', 1.5, "
                   "'{}', '{}', ?)", (json.dumps({"content": image, "styles": [image]}),))
    store = Store(tmp_path)
    try:
        assert store.get("abc123").finish is False
        assert store.request_finish("abc123") == "running" and store.get("abc123").finish is True
        assert store.recover() == ["abc123"]  # a restart: queued again, and still to be finished when it runs
        assert store.get("abc123").status == "queued" and store.get("abc123").finish is True
        assert store.request_finish("nosuchjob") == "gone"
    finally:
        store.close()


def test_a_data_folder_in_the_tables_format_loads_as_typed_jobs(tmp_path):
    Store(tmp_path).close()  # the schema
    image = {"name": "photo.png", "sha256": "ab" * 32, "bytes": 2600, "width": 40, "height": 27, "example": None}
    example = {"name": "starry_night.jpg", "sha256": "cd" * 32, "bytes": 9, "width": 4, "height": 3,
               "example": "starry_night.jpg"}
    inputs = json.dumps({"content": image, "styles": [example]})
    progress = json.dumps({"iteration": 2, "total": 3, "fraction": 1.0, "losses": {"total": 1.0}})
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("INSERT INTO jobs (id, status, created, started, finished, options, preset, config, inputs, "
                   "attempts, cancel, progress, device) VALUES ('abc123', 'done', 1.5, 2.5, 3.5, '{\"size\": 32}', "
                   "NULL, '{\"size\": 32}', ?, 1, 0, ?, 'cpu')", (inputs, progress))
        db.execute("INSERT INTO jobs (id, status, created, options, config, inputs) "
                   "VALUES ('def456', 'queued', 4.5, '{}', '{}', ?)", (inputs,))
    store = Store(tmp_path)
    try:
        done, queued = store.get("abc123"), store.get("def456")
        assert isinstance(done, JobRecord) and isinstance(queued, JobRecord)
        assert done.status == "done" and done.cancel is False and done.progress == json.loads(progress)
        assert done.options == {"size": 32} and done.position is None and done.attempts == 1
        assert done.inputs.content.sha256 == "ab" * 32 and done.inputs.styles[0].example == "starry_night.jpg"
        assert queued.position == 1 and queued.started is None and queued.progress is None
        assert json.loads(done.inputs.to_json()) == json.loads(inputs)  # written back as it was read
        assert JobInputs.from_json(inputs) == done.inputs
        assert [j.id for j in store.page()] == ["def456", "abc123"]
    finally:
        store.close()


def _server_imports(path: Path, names: set[str]) -> set[str]:
    """The server modules that ``path`` imports anywhere in it (top level, functions, TYPE_CHECKING)."""
    package = "restyle.server"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                base = ".".join([package, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in names}
    return found


def test_the_server_modules_import_one_another_without_a_cycle():
    modules = {f"restyle.server.{p.stem}": p for p in SERVER.glob("*.py") if p.stem != "__init__"}
    modules["restyle.server"] = SERVER / "__init__.py"
    graph = {name: _server_imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert graph["restyle.server.app"] >= {"restyle.server.jobs", "restyle.server.state"}  # the walk sees imports

    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name):] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
