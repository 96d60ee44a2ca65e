"""Tasks in spawned worker processes on this machine (``--jobs N``): each worker runs one task at
a time; a worker that dies becomes its task's error outcome and is replaced for the next ones.

>>> from restyle.executors import ProcessExecutor
>>> for key, outcome in ProcessExecutor(jobs=2).map_unordered(run_task, [(0, task0), (1, task1)]):
...     print(key, outcome.get("error") or "ok")
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from restyle.errors import ConfigError, killed_hint
from restyle.executors.base import K, Outcome, Task, TaskFn, call, default_threads, error_outcome, init_worker


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
        hint = killed_hint(-code if code is not None else None)
        hint = f": {hint}" if hint else ""
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


_END: Any = object()


class ProcessExecutor:
    """Run the tasks in ``jobs`` spawned worker processes (spawn: CUDA-safe, nothing inherited),
    each with ``threads`` torch threads (default :func:`default_threads`) and each distinct notice
    logged once per worker. A worker runs one task at a time; a worker that dies is replaced.
    Tasks are taken from the iterable only as workers become free."""

    shares_files = True

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

        source = iter(tasks)
        following = next(source, _END)
        if following is _END:
            return
        ctx = multiprocessing.get_context("spawn")
        workers: list[_Worker] = []
        try:
            while following is not _END or workers:
                for w in [w for w in workers if not w.busy and (following is _END or not w.alive)]:
                    w.stop()  # nothing left for it, or it died between tasks
                    workers.remove(w)
                while following is not _END:  # every idle worker gets a task; workers start as needed, up to jobs
                    idle = next((w for w in workers if not w.busy and w.alive), None)
                    if idle is None and len(workers) < self.jobs:
                        idle = _Worker(ctx, fn, self.threads)
                        workers.append(idle)
                    if idle is None:
                        break
                    key, task = following
                    following = next(source, _END)
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
