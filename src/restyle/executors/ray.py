"""Tasks on a Ray cluster (``--ray``): one Ray task per restyle task, placed by Ray.

- where: ``"auto"`` (``$RAY_ADDRESS``, else the cluster started on this machine with ``ray start
  --head``), an address (``HOST:6379``, ``ray://HOST:10001``), or ``"local"`` (a private Ray
  instance on this machine, shut down when the executor closes); a process that already called
  ``ray.init`` keeps its connection;
- resources: one GPU per task when the cluster has GPUs (else none), and ``cpus_per_task`` CPUs
  (default 1; that many torch threads on the worker);
- workers need no shared file system: ``shares_files`` is False, so callers put the input files'
  bytes in the tasks and write the outputs from the outcomes themselves. Bytes values of 64 KiB
  and more are put in Ray's object store once however many tasks carry them (a style image
  shared by a thousand outputs travels once per node, not a thousand times);
- a worker that dies (killed, out of memory, its node lost) has its task retried up to
  ``max_retries`` times; after that, the task's outcome is an error naming what happened. An
  exception inside the task is never retried: it is the task's outcome (tasks are deterministic);
- worker processes are reused across tasks (also for GPU tasks, where Ray's default would start
  a new process per task), so per-process caches such as the backbone survive between tasks;
- at most ``max_in_flight`` tasks are submitted at a time (default twice the cluster's task
  slots), taken lazily from the tasks given.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, Iterable, Iterator, Mapping

from restyle.errors import ConfigError, memory_message
from restyle.executors.base import K, Outcome, Task, TaskFn, call, init_worker, one_line, set_threads

#: Bytes values at least this long are put in the object store once and shared by the tasks.
SHARE_MIN = 64 * 1024

_worker_ready = False


class _Shared:
    """A placeholder for a bytes value passed as the task's ``index``-th extra argument."""

    def __init__(self, index: int):
        self.index = index


def _fill(value: Any, shared: tuple[Any, ...]) -> Any:
    if isinstance(value, _Shared):
        return shared[value.index]
    if isinstance(value, dict):
        return {k: _fill(v, shared) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, shared) for v in value]
    return value


def run_on_worker(fn: TaskFn, task: Task, threads: int | None, *shared: Any) -> Outcome:
    """The Ray task: ``fn(task)`` on a worker, its shared bytes filled in, with ``threads`` torch
    threads; an exception is the task's error outcome."""
    global _worker_ready
    if not _worker_ready:  # once per worker process
        init_worker(None)
        _worker_ready = True
    set_threads(threads)
    return call(fn, _fill(task, shared) if shared else task)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray on this machine and the cluster's: pip install 'restyle[ray]'") from None
    return ray


class RayExecutor:
    """Run tasks on a Ray cluster (see the module docstring)."""

    shares_files = False

    def __init__(self, address: str | None = "auto", *, cpus_per_task: int | None = None,
                 gpus_per_task: float | None = None, max_retries: int = 3, max_in_flight: int | None = None,
                 init_options: Mapping[str, Any] | None = None):
        if cpus_per_task is not None and cpus_per_task < 1:
            raise ConfigError("--threads (CPUs per Ray task) must be at least 1")
        if gpus_per_task is not None and gpus_per_task < 0:
            raise ConfigError("--ray-gpus must be 0 or more")
        if max_retries < 0:
            raise ConfigError("max_retries must be 0 or more")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigError("max_in_flight must be at least 1")
        self.ray = _import_ray()
        self.address = address or "auto"
        self.cpus_per_task = cpus_per_task or 1
        self.gpus_per_task = gpus_per_task
        self.max_retries = max_retries
        self.max_in_flight = max_in_flight
        self.init_options = dict(init_options or {})
        self.owned = False  # whether this executor connected (and so disconnects on close)

    # ---- the cluster -----------------------------------------------------------------------
    def connect(self) -> None:
        """Connect to the cluster (once); a one-line :class:`ConfigError` when there is none."""
        ray = self.ray
        if ray.is_initialized():
            return
        options: dict[str, Any] = {}
        if not self.address.startswith("ray://"):  # Ray Client passes these on to the cluster's own ray.init
            options.update(logging_level=logging.WARNING, log_to_driver=False)
        if self.address == "local":
            options["include_dashboard"] = False
        options.update(self.init_options)
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, ValueError, RuntimeError) as err:
            where = "no Ray cluster found" if self.address == "auto" else f"cannot connect to Ray at '{self.address}'"
            raise ConfigError(f"--ray: {where} ({one_line(str(err))}); start one with `ray start --head`, set "
                              "RAY_ADDRESS, or use --ray local for a private one on this machine (a cluster with "
                              "token authentication also needs RAY_AUTH_MODE=token and its token)") from None
        self.owned = True

    def close(self) -> None:
        """Disconnect from the cluster if this executor connected (a ``local`` one shuts down)."""
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def resources(self) -> tuple[int, float, int]:
        """(CPUs per task, GPUs per task, tasks the cluster runs at once now)."""
        self.connect()
        total = self.ray.cluster_resources()
        gpus = self.gpus_per_task if self.gpus_per_task is not None else (1.0 if total.get("GPU", 0) > 0 else 0.0)
        slots = int(total.get("GPU", 0) // gpus) if gpus else int(total.get("CPU", 0) // self.cpus_per_task)
        return self.cpus_per_task, gpus, max(1, slots)

    def describe(self) -> str:
        cpus, gpus, slots = self.resources()
        where = "the Ray instance this process is connected to" if not self.owned else (
            "a local Ray instance" if self.address == "local" else f"Ray at {self._gcs_address()}")
        gpu = f" and {gpus:g} GPU(s)" if gpus else ""
        return (f"{where}: {slots} task(s) at a time, {cpus} CPU(s){gpu} per task, "
                f"tasks retried up to {self.max_retries} time(s) when a worker dies")

    def _gcs_address(self) -> str:
        try:
            return str(self.ray.get_runtime_context().gcs_address)
        except Exception:  # noqa: BLE001 - Ray Client has none; the address given will do
            return self.address

    # ---- the tasks -------------------------------------------------------------------------
    def map_unordered(self, fn: TaskFn, tasks: Iterable[tuple[K, Task]]) -> Iterator[tuple[K, Outcome]]:
        ray = self.ray
        cpus, gpus, slots = self.resources()
        limit = self.max_in_flight or max(4, 2 * slots)
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=self.max_retries, retry_exceptions=False,
                            max_calls=0)(run_on_worker)
        threads = int(cpus) if cpus >= 1 else None
        store = _SharedStore(ray)
        running: dict[Any, tuple[Any, list[bytes]]] = {}  # ref -> (key, digests of its shared values)
        source = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) < limit:
                    try:
                        key, task = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    skeleton, refs, digests = store.share(task)
                    running[remote.remote(fn, skeleton, threads, *refs)] = (key, digests)
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    key, digests = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        outcome = self._error(err)
                    store.release(digests)
                    yield key, outcome
        finally:
            for ref in running:  # the caller stopped early (or raised): stop what is still running
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001, S110 - finished meanwhile, or the cluster is gone
                    pass

    def _error(self, err: Exception) -> Outcome:
        """The outcome of a task Ray could not finish, in one line."""
        ex = self.ray.exceptions
        if isinstance(err, ex.OutOfMemoryError):
            return {"error": f"Ray's memory monitor killed the worker running this task ({self.max_retries} "
                             f"retries included): {memory_message(also=('fewer tasks per node',))}"}
        if isinstance(err, (ex.WorkerCrashedError, ex.NodeDiedError, ex.LocalRayletDiedError, ex.ObjectLostError)):
            return {"error": f"the Ray worker running this task died ({self.max_retries} retries included): "
                             f"{_gist(err)}"}
        if isinstance(err, ex.TaskCancelledError):
            return {"error": "the Ray task was cancelled"}
        cause = getattr(err, "cause", None) if isinstance(err, ex.RayTaskError) else None
        text = _gist(cause or err)
        hint = "; is restyle installed on every Ray node?" if "No module named" in text else ""
        return {"error": f"the Ray worker could not run this task ({text}){hint}"}


def _gist(err: BaseException) -> str:
    """An exception as one short line: its type and message, without Ray's appended traceback."""
    text = re.split(r"\s*traceback:|\n\s*Traceback \(most recent", str(err), maxsplit=1, flags=re.IGNORECASE)[0]
    text = one_line(text) or type(err).__name__
    text = text if text.startswith(type(err).__name__) else f"{type(err).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


class _SharedStore:
    """Large bytes values of the tasks in flight, each put in the object store once."""

    def __init__(self, ray: Any):
        self.ray = ray
        self.refs: dict[bytes, Any] = {}
        self.users: dict[bytes, int] = {}

    def share(self, task: Task) -> tuple[Task, list[Any], list[bytes]]:
        """``task`` with each large bytes value replaced by a placeholder; the object refs to pass
        after it, and the values' digests (for :meth:`release`)."""
        refs: list[Any] = []
        digests: list[bytes] = []

        def walk(value: Any) -> Any:
            if isinstance(value, (bytes, bytearray)) and len(value) >= SHARE_MIN:
                digest = hashlib.blake2b(value, digest_size=20).digest()
                if digest not in self.refs:
                    self.refs[digest] = self.ray.put(bytes(value))
                self.users[digest] = self.users.get(digest, 0) + 1
                digests.append(digest)
                refs.append(self.refs[digest])
                return _Shared(len(refs) - 1)
            if isinstance(value, dict):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        return walk(task), refs, digests

    def release(self, digests: list[bytes]) -> None:
        """A task has finished: drop the values no task in flight uses any more."""
        for digest in digests:
            self.users[digest] -= 1
            if not self.users[digest]:
                del self.users[digest], self.refs[digest]
