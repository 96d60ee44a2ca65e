"""Where a study's cells run: moved to :mod:`restyle.executors` (shared with ``restyle batch``);
these names stay importable from here."""

from __future__ import annotations

from restyle.executors.base import (
    Executor,
    InProcessExecutor,
    OnceFilter,
    Outcome,
    Task,
    TaskFn,
    call,
    cpu_count,
    default_threads,
    error_outcome,
    init_worker,
)
from restyle.executors.process import ProcessExecutor

__all__ = ["Executor", "InProcessExecutor", "OnceFilter", "Outcome", "ProcessExecutor", "Task", "TaskFn", "call",
           "cpu_count", "default_threads", "error_outcome", "init_worker"]
