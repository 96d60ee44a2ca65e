"""restyle.study.executors: the executors moved to restyle.executors; the names studies and their
users imported from here still work and are the same objects."""

from __future__ import annotations

import restyle.executors.base as base
import restyle.executors.process as process
from restyle import study
from restyle.study import executors


def test_the_old_import_path_gives_the_same_executors():
    assert executors.Executor is base.Executor
    assert executors.InProcessExecutor is base.InProcessExecutor is study.InProcessExecutor
    assert executors.ProcessExecutor is process.ProcessExecutor is study.ProcessExecutor
    assert executors.error_outcome is base.error_outcome and executors.default_threads is base.default_threads
