"""Where a study's cells run: an :class:`Executor` maps a task function over picklable tasks and
yields each task's outcome as it finishes.

One small protocol, several backends: :class:`InProcessExecutor` (the default: this process, one
task after another) and :class:`ProcessExecutor` (spawned worker processes). Another backend (a
Ray cluster, say) needs only ``map_unordered`` and ``describe``.

The contract every backend keeps:

- ``fn`` is a module-level function (picklable by reference) taking one task and returning its
  outcome; tasks and outcomes are plain picklable dicts (paths, numbers, config dicts);
- ``tasks`` are ``(key, task)`` pairs; every key comes back exactly once, with its outcome, in the
  order the tasks finish;
- a failure never loses a task: an exception raised by ``fn``, an outcome that cannot be sent
  back, or a worker that dies (killed for memory, a crash in native code) becomes the outcome
  ``{"error": "..."}`` of that task, and the other tasks go on;
- closing the iterator early (the caller breaks out, or raises) stops the workers.

>>> from restyle.study.executors import ProcessExecutor
>>> for key, outcome in ProcessExecutor(jobs=2).map_unordered(run_cell, [(0, task0), (1, task1)]):
...     print(key, outcome.get("error") or "ok")
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Any, Callable, Hashable, Iterable, Iterator, Protocol, TypeVar, runtime_checkable

from restyle.errors import ConfigError, RestyleError

log = logging.getLogger("restyle")

Task = dict[str, Any]
Outcome = dict[str, Any]
TaskFn = Callable[[Task], Outcome]
K = TypeVar("K", bound=Hashable)


@runtime_checkable
class Executor(Protocol):
    """Runs tasks somewhere and hands their outcomes back (see the module docstring)."""

    def map_unordered(self, fn: TaskFn, tasks: Iterable[tuple[K, Task]]) -> Iterator[tuple[K, Outcome]]:
        """Yield ``(key, fn(task))`` for every ``(key, task)`` as each finishes; a failure is ``{"error": ...}``."""
        ...

    def describe(self) -> str:
        """How the tasks run, for the report's notes: ``"2 process(es), 4 torch thread(s) each"``."""
        ...


def error_outcome(err: BaseException, context: str = "") -> Outcome:
    """The outcome of a task that failed with ``err``: restyle's own errors as they read, others
    with their type."""
    text = str(err) if isinstance(err, RestyleError) else f"{type(err).__name__}: {err}"
    return {"error": f"{context}: {text}" if context else text}


def call(fn: TaskFn, task: Task) -> Outcome:
    """``fn(task)``, with an exception turned into an error outcome."""
    try:
        return fn(task)
    except Exception as err:  # noqa: BLE001 - one failed task must not end the others; it is reported
        return error_outcome(err)


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(jobs: int) -> int:
    """Torch threads per worker process: max(1, CPUs // jobs), at most $OMP_NUM_THREADS when set."""
    n = max(1, cpu_count() // max(1, jobs))
    env = os.environ.get("OMP_NUM_THREADS", "")
    return min(n, int(env)) if env.isdigit() and int(env) > 0 else n


class OnceFilter(logging.Filter):
    """Let each distinct notice through once (every cell of a fallback study says the same)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


# ---------------------------------------------------------------------------------------------
# In this process


class InProcessExecutor:
    """Run the tasks here, one after another. With ``threads``, torch uses that many threads while
    the tasks run (torch's setting is process-wide; it is restored afterwards). Each distinct log
    notice is shown once while the tasks run."""

    def __init__(self, threads: int | None = None):
        if threads is not None and threads < 1:
            raise ConfigError("--threads must be at least 1")
        self.threads = threads

    def describe(self) -> str:
        if self.threads is not None:
            threads = self.threads
        else:
            import torch

            threads = torch.get_num_threads()
        return f"1 process(es), {threads} torch thread(s) each"

    def map_unordered(self, fn: TaskFn, tasks: Iterable[tuple[K, Task]]) -> Iterator[tuple[K, Outcome]]:
        once = OnceFilter()
        log.addFilter(once)
        saved = _set_threads(self.threads)
        try:
            for key, task in tasks:
                yield key, call(fn, task)
        finally:
            log.removeFilter(once)
            _set_threads(saved)


def _set_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads (when ``threads`` is given); the previous setting, or None."""
    if threads is None:
        return None
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    return saved


# ---------------------------------------------------------------------------------------------
# In spawned worker processes


def init_worker(threads: int | None) -> None:
    """A worker's set-up: ``threads`` torch threads, each distinct notice logged once."""
    _set_threads(threads)
    log.addFilter(OnceFilter())


def _worker_main(conn: Any, fn: TaskFn, threads: int | None) -> None:
    """A worker's loop: receive a task, send its outcome back, until told to stop (None) or the
    parent goes away."""
    try:
        init_worker(threads)
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            outcome = call(fn, task)
            try:
                conn.send(outcome)
            except Exception as err:  # noqa: BLE001 - e.g. an outcome that does not pickle
                conn.send(error_outcome(err, "the task's outcome could not be sent back"))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        return


class _Worker:
    """One spawned worker process and the pipe to it; runs one task at a time."""

    def __init__(self, ctx: Any, fn: TaskFn, threads: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, fn, threads), daemon=True,
                                   name="restyle-worker")
        self.process.start()
        child.close()  # the worker holds the other end: its death closes the pipe
        self.key: Any = None
        self.busy = False

    def give(self, key: Any, task: Task) -> Outcome | None:
        """Send ``task``; an error outcome when it could not be sent."""
        self.key, self.busy = key, True
        try:
            self.conn.send(task)
        except (OSError, EOFError):
            self.busy = False
            return self.died()
        except Exception as err:  # noqa: BLE001 - a task that does not pickle
            self.busy = False
            return error_outcome(err, "the task could not be sent to a worker")
        return None

    def collect(self) -> Outcome:
        """The outcome of the running task (its worker has answered or exited)."""
        self.busy = False
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return self.died()

    def died(self) -> Outcome:
        self.process.join(timeout=5)
        code = self.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hint = ": out of memory?" if code == -9 else ""  # SIGKILL: most often the kernel's OOM killer
        return {"error": f"worker process died while running this task ({how}{hint})"}

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """Ask an idle worker to finish; end a busy one."""
        if self.busy or not self.alive:
            self.process.terminate()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessExecutor:
    """Run the tasks in ``jobs`` spawned worker processes (spawn: CUDA-safe, nothing inherited),
    each with ``threads`` torch threads (default :func:`default_threads`) and each distinct notice
    logged once per worker. A worker runs one task at a time; a worker that dies is replaced."""

    def __init__(self, jobs: int, threads: int | None = None):
        if jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        if threads is not None and threads < 1:
            raise ConfigError("--threads must be at least 1")
        self.jobs = jobs
        self.threads = threads if threads is not None else default_threads(jobs)

    def describe(self) -> str:
        return f"{self.jobs} process(es), {self.threads} torch thread(s) each"

    def map_unordered(self, fn: TaskFn, tasks: Iterable[tuple[K, Task]]) -> Iterator[tuple[K, Outcome]]:
        import multiprocessing
        from multiprocessing.connection import wait

        pending = deque(tasks)
        if not pending:
            return
        ctx = multiprocessing.get_context("spawn")
        workers: list[_Worker] = []
        try:
            while pending or workers:
                for w in [w for w in workers if not w.busy and (not pending or not w.alive)]:
                    w.stop()  # nothing left for it, or it died between tasks
                    workers.remove(w)
                while pending:  # every idle worker gets a task; workers start as needed, up to jobs
                    idle = next((w for w in workers if not w.busy and w.alive), None)
                    if idle is None and len(workers) < self.jobs:
                        idle = _Worker(ctx, fn, self.threads)
                        workers.append(idle)
                    if idle is None:
                        break
                    key, task = pending.popleft()
                    failed = idle.give(key, task)
                    if failed is not None:
                        yield key, failed
                busy = [w for w in workers if w.busy]
                if not busy:
                    continue
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for w in busy:
                    if w.conn in ready or w.process.sentinel in ready:
                        yield w.key, w.collect()
        finally:
            for w in workers:  # all idle when done; busy ones too when the caller stopped early
                w.stop()
