"""restyle.executors (local backends): every backend runs the same tasks to the same outcomes, a
failure (an exception, a dead worker) becomes that task's error outcome without losing the others,
and tasks are taken from their iterable only as workers become free."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest

from restyle.executors import Executor, InProcessExecutor, ProcessExecutor, shares_files

# Task functions run in spawned workers too: module-level, so they pickle by reference.


def square(task: dict) -> dict:
    if task["x"] == 3:
        raise ValueError("three is not welcome")
    return {"value": task["x"] ** 2, "error": ""}


def die_on_request(task: dict) -> dict:
    if task.get("die"):
        os._exit(7)  # as a worker killed mid-task (out of memory, a crash in native code)
    return {"value": task["x"] ** 2, "error": ""}


TASKS = [(f"t{x}", {"x": x}) for x in range(6)]


@contextmanager
def no_hang(seconds: int = 180):
    """Fail instead of hanging the test run."""
    def timeout(signum, frame):
        raise TimeoutError(f"no outcome within {seconds} s: the executor hangs")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def process_outcomes():
    """The outcomes of TASKS in two worker processes (spawning workers is slow: done once)."""
    with no_hang():
        return list(ProcessExecutor(jobs=2, threads=1).map_unordered(square, TASKS))


def test_both_executors_are_executors_that_share_this_file_system():
    assert isinstance(InProcessExecutor(), Executor)
    assert isinstance(ProcessExecutor(jobs=2, threads=1), Executor)
    assert ProcessExecutor(jobs=2, threads=3).describe() == "2 process(es), 3 torch thread(s) each"
    assert shares_files(InProcessExecutor()) and shares_files(ProcessExecutor(jobs=1))
    assert shares_files(object())  # a backend that does not say: its workers see the files


def test_importing_the_executors_needs_neither_torch_nor_ray():
    code = ("import sys, restyle.executors, restyle.executors.base, restyle.executors.process, restyle.executors.ray; "
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_in_process_and_process_executors_give_the_same_outcomes(process_outcomes):
    in_process = list(InProcessExecutor().map_unordered(square, TASKS))
    assert [key for key, _ in in_process] == [key for key, _ in TASKS]  # in process: in order
    assert sorted(key for key, _ in process_outcomes) == sorted(key for key, _ in TASKS)  # each key once
    assert dict(process_outcomes) == dict(in_process)


@pytest.mark.parametrize("executor", ["in-process", "process"])
def test_a_task_that_raises_yields_an_error_outcome_and_the_others_finish(executor, process_outcomes):
    outcomes = dict(InProcessExecutor().map_unordered(square, TASKS) if executor == "in-process" else process_outcomes)
    assert outcomes["t3"] == {"error": "ValueError: three is not welcome"}
    assert {k: v["value"] for k, v in outcomes.items() if k != "t3"} == {"t0": 0, "t1": 1, "t2": 4, "t4": 16, "t5": 25}


def test_a_worker_killed_mid_task_yields_an_error_outcome_and_the_others_finish():
    tasks = [(x, {"x": x, "die": x == 1}) for x in range(4)]
    with no_hang():
        outcomes = dict(ProcessExecutor(jobs=1, threads=1).map_unordered(die_on_request, tasks))
    assert sorted(outcomes) == [0, 1, 2, 3]  # none lost; the dead worker was replaced for 2 and 3
    assert "worker process died" in outcomes[1]["error"] and "exit code 7" in outcomes[1]["error"]
    assert [outcomes[x]["value"] for x in (0, 2, 3)] == [0, 4, 9]


def test_stopping_early_ends_the_workers():
    with no_hang():
        outcomes = ProcessExecutor(jobs=2, threads=1).map_unordered(die_on_request, TASKS)
        first = next(outcomes)
        outcomes.close()
    assert first[1]["error"] == ""
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("executor", ["in-process", "process"])
def test_tasks_are_taken_only_as_workers_become_free(executor):
    taken: list[int] = []

    def tasks():
        for x in range(6):
            taken.append(x)
            yield x, {"x": x}

    backend = InProcessExecutor() if executor == "in-process" else ProcessExecutor(jobs=1, threads=1)
    with no_hang():
        outcomes = backend.map_unordered(square, tasks())
        first = next(outcomes)
        seen_then = list(taken)
        rest = list(outcomes)
    assert first == (0, {"value": 0, "error": ""})
    assert len(seen_then) <= 2  # the running task and at most the one to hand over next, not all six
    assert sorted(k for k, _ in [first, *rest]) == list(range(6))
