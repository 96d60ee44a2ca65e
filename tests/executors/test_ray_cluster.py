"""restyle.executors.ray on a local Ray cluster started by this module (one for all its tests):
the same outcomes as in this process; a worker killed mid-task is retried and nothing is lost;
large inputs travel once; ``restyle batch --ray`` makes the same pixels as a local batch, and a
worker killed mid-batch leaves no output missing or partial; each worker loads the backbone
once; ``restyle study --ray`` runs its cells there."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restyle import api
from restyle.cli import main
from restyle.config import Config
from restyle.executors import Executor, InProcessExecutor, runs, shares_files
from restyle.io.record import read_run_record, side_paths

ray = pytest.importorskip("ray")
from restyle.executors.ray import RayExecutor, _SharedStore  # noqa: E402 - needs ray

FAST = ["--size", "32", "-n", "2", "--precision", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray instance for this module, shut down after it."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING,
             log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this module's task functions travel by value
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


@contextlib.contextmanager
def no_hang(seconds: int = 240):
    def timeout(signum, frame):
        raise TimeoutError(f"no outcome within {seconds} s: the executor hangs")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# Task functions (sent to the workers by value)


def square(task: dict) -> dict:
    if task["x"] == 3:
        raise ValueError("three is not welcome")
    return {"value": task["x"] ** 2, "error": ""}


def die_once(task: dict) -> dict:
    """Kill this worker the first time the task runs (its marker file is not there yet)."""
    marker = Path(task["marker"])
    if task.get("always") or not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"value": task["x"], "error": ""}


def measure(task: dict) -> dict:
    data = task["files"]["style"]
    return {"size": len(data), "first": data[0], "error": ""}


def cli(*argv: object) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def summary(out: Path) -> list[dict[str, str]]:
    with open(out / "batch.csv", newline="") as f:
        return list(csv.DictReader(f))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def running_tasks() -> list[int]:
    """The worker processes of this module's cluster (children of the raylet this process started)
    that are running a task now: Ray titles them ``ray::run_on_worker`` meanwhile."""
    def parent(pid: str) -> int:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line for line in f if line.startswith("PPid:")).split()[1])

    ours, found = set(), []
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration):
            if parent(pid) == os.getpid():
                ours.add(int(pid))
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
            if title.startswith(b"ray::run_on_worker") and parent(pid) in ours:
                found.append(int(pid))
    return found


# ---- the executor --------------------------------------------------------------------------


def test_ray_gives_the_same_outcomes_as_this_process_and_says_where_it_runs(cluster):
    executor = RayExecutor()
    assert isinstance(executor, Executor) and not shares_files(executor)
    tasks = [(f"t{x}", {"x": x}) for x in range(5)]
    with no_hang():
        on_ray = list(executor.map_unordered(square, tasks))
    assert sorted(k for k, _ in on_ray) == [k for k, _ in tasks]
    assert dict(on_ray) == dict(InProcessExecutor().map_unordered(square, tasks))
    assert dict(on_ray)["t3"] == {"error": "ValueError: three is not welcome"}  # an exception is not retried
    assert executor.describe().startswith("the Ray instance this process is connected to: 2 task(s) at a time, "
                                          "1 CPU(s) per task")


def test_a_worker_killed_mid_task_is_retried_and_the_task_finishes(cluster, tmp_path):
    tasks = [(x, {"x": x, "marker": str(tmp_path / f"m{x}")}) for x in range(3)]
    with no_hang():
        outcomes = dict(RayExecutor(max_retries=2).map_unordered(die_once, tasks))
    assert outcomes == {x: {"value": x, "error": ""} for x in range(3)}
    assert all((tmp_path / f"m{x}").exists() for x in range(3))  # each was killed once, then ran again


def test_a_task_whose_worker_keeps_dying_is_an_error_outcome_and_the_others_finish(cluster, tmp_path):
    tasks = [(x, {"x": x, "marker": str(tmp_path / f"m{x}"), "always": x == 1}) for x in range(3)]
    for x in (0, 2):
        (tmp_path / f"m{x}").touch()
    with no_hang():
        outcomes = dict(RayExecutor(max_retries=0).map_unordered(die_once, tasks))
    assert outcomes[0] == {"value": 0, "error": ""} and outcomes[2] == {"value": 2, "error": ""}
    assert outcomes[1]["error"].startswith("the Ray worker running this task died (0 retries included): ")
    assert "\n" not in outcomes[1]["error"]


def test_a_large_input_shared_by_many_tasks_is_put_in_the_object_store_once(cluster):
    big = bytes([7]) * (200 * 1024)
    store = _SharedStore(ray)
    first, refs1, digests1 = store.share({"files": {"style": big}, "x": 1})
    second, refs2, digests2 = store.share({"files": {"style": bytes(big)}, "x": 2})
    assert refs1 == refs2 and len(store.refs) == 1 and first["x"] == 1
    store.release(digests1)
    assert len(store.refs) == 1  # the second task still needs it
    store.release(digests2)
    assert store.refs == {}
    tasks = [(x, {"files": {"style": big}}) for x in range(3)]
    with no_hang():
        outcomes = dict(RayExecutor().map_unordered(measure, tasks))
    assert outcomes == {x: {"size": len(big), "first": 7, "error": ""} for x in range(3)}


def test_each_worker_loads_the_backbone_once_for_all_its_tasks(cluster, inputs):
    config = Config.from_options(size=32, iterations=1, precision="fp32", device="cpu")
    tasks = [(i, runs.make_task(config, str(inputs["content"]), [str(inputs["style"])], ship=True)) for i in range(4)]
    with no_hang():
        outcomes = list(RayExecutor().map_unordered(runs.run_task, tasks))
    assert all(o["error"] == "" for _, o in outcomes)
    loads: dict[int, list[int]] = {}
    for _, outcome in outcomes:
        loads.setdefault(outcome["pid"], []).append(outcome["backbone_loads"])
    assert max(len(v) for v in loads.values()) >= 2  # some worker ran several tasks...
    assert all(len(set(v)) == 1 for v in loads.values())  # ...without loading the backbone again


# ---- restyle batch --ray and restyle study --ray -------------------------------------------


def test_a_batch_on_ray_makes_the_same_pixels_as_a_local_batch(cluster, inputs, tmp_path):
    argv = [inputs["content"], inputs["style2"], "--styles", inputs["style"], *FAST]
    code, err = cli("batch", *argv, "-o", tmp_path / "local")
    assert code == 0, err
    with no_hang():
        code, err = cli("batch", *argv, "-o", tmp_path / "ray", "--ray")
    assert code == 0, err
    assert "on the Ray instance this process is connected to" in err
    assert [r["status"] for r in summary(tmp_path / "ray")] == ["ran", "ran"]
    for name in ("content__style.png", "style2__style.png"):
        assert np.array_equal(pixels(tmp_path / "local" / name), pixels(tmp_path / "ray" / name))
        local, on_ray = (read_run_record(tmp_path / d / name) for d in ("local", "ray"))
        assert local["config"] == on_ray["config"] and local["inputs"] == on_ray["inputs"]  # the driver's paths
    assert ray.is_initialized()  # a batch does not end a connection it did not open


def test_a_worker_killed_mid_batch_is_retried_and_no_output_is_missing_or_partial(cluster, inputs, tmp_path):
    items = api.plan_batch([inputs["content"], inputs["style2"]], [inputs["style"], inputs["style2"]], tmp_path,
                           options={"size": 48, "iterations": 15, "precision": "fp32", "device": "cpu"})
    done: dict = {}
    batch = threading.Thread(target=lambda: done.update(
        summary=api.run_batch(items, tmp_path, executor=RayExecutor(max_retries=2))))
    with no_hang():
        batch.start()
        killed = None
        while killed is None and batch.is_alive():
            for pid in running_tasks():
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
            time.sleep(0.01)
        batch.join()
    assert killed is not None, "no task was seen running"
    result = done["summary"]
    assert [r.status for r in result.results] == ["ran"] * 4, [r.error for r in result.results]
    for r in result.results:
        assert read_run_record(r.item.output)["config"]["iterations"] == 15
        assert pixels(r.item.output).shape[2] == 3 and side_paths(r.item.output)["csv"].is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["batch.csv", *(r.item.name for r in result.results), *(f"{Path(r.item.name).stem}.losses.csv"
                                                                  for r in result.results)])


def test_a_study_runs_its_cells_on_ray(cluster, inputs, tmp_path):
    with no_hang():
        code, err = cli("study", inputs["content"], "--styles", inputs["style"], "-o", tmp_path, "--ray", *FAST)
    assert code == 0, err
    png = tmp_path / "cells" / next(p.name for p in (tmp_path / "cells").glob("*.png"))
    assert read_run_record(png)["inputs"]["content"] == str(inputs["content"].resolve())
    assert "Ray instance" in (tmp_path / "index.html").read_text()
