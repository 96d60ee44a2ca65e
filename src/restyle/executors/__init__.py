"""Where tasks run: an :class:`Executor` maps a task function over picklable tasks and yields
each task's outcome as it finishes (the contract: :mod:`.base`).

Backends: :class:`InProcessExecutor` (this process, one task after another),
:class:`ProcessExecutor` (spawned processes on this machine, :mod:`.process`) and
:class:`RayExecutor` (a Ray cluster, :mod:`.ray`; needs ``restyle[ray]``). :mod:`.runs` holds
the style-transfer task they run for batches and studies, and the check that an output is
already done. Names load on first use: importing this package needs neither torch nor Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr

_EXPORTS = {
    "Executor": "restyle.executors.base", "InProcessExecutor": "restyle.executors.base",
    "error_outcome": "restyle.executors.base", "shares_files": "restyle.executors.base",
    "ProcessExecutor": "restyle.executors.process", "RayExecutor": "restyle.executors.ray",
}

__all__ = ["Executor", "InProcessExecutor", "ProcessExecutor", "RayExecutor", "error_outcome", "shares_files"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from restyle.executors.base import Executor, InProcessExecutor, error_outcome, shares_files
    from restyle.executors.process import ProcessExecutor
    from restyle.executors.ray import RayExecutor
