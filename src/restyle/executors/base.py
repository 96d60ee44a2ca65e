"""The :class:`Executor` protocol, the in-process backend and what every backend shares.

An executor maps a task function over picklable tasks and yields each task's outcome as it
finishes. The contract every backend keeps:

- ``fn`` is a module-level function (picklable by reference) taking one task and returning its
  outcome; tasks and outcomes are plain picklable dicts (paths, numbers, config dicts, bytes,
  arrays), typed by their keys: :class:`Task` and :class:`Outcome`;
- ``tasks`` are ``(key, task)`` pairs, read lazily (a backend takes the next task only when it
  has room for it, so a batch of thousands never sits in memory at once); every key comes back
  exactly once, with its outcome, in the order the tasks finish;
- a failure never loses a task: an exception raised by ``fn``, an outcome that cannot be sent
  back, or a worker that dies (killed for memory, a crash in native code, a lost cluster node)
  becomes the outcome ``{"error": "one line"}`` of that task, and the other tasks go on;
- closing the iterator early (the caller breaks out, or raises) stops the workers.

A backend may also say ``shares_files = False`` (see :func:`shares_files`): its workers may run
on other machines, so tasks must carry their input files as bytes and outcomes bring the
outputs back to the caller, who writes them (:mod:`restyle.executors.runs`).
"""

from __future__ import annotations

import logging
import os
from typing import (
    Any,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Protocol,
    Required,
    Sequence,
    TypedDict,
    TypeVar,
    runtime_checkable,
)

from restyle.config import is_device
from restyle.errors import ConfigError, RestyleError

log = logging.getLogger("restyle")



class Task(TypedDict, total=False):
    """One output's run as it crosses to a worker (:func:`restyle.executors.runs.make_task`): a plain dict, so
    every backend pickles it (Ray puts its large ``files`` values in the object store)."""

    config: Required[dict[str, Any]]  # Config.to_dict()
    content: Required[str]  # the paths as the user gave them
    styles: Required[list[str]]
    pixels: bool  # send back the float pixels (16-bit TIFF outputs)
    files: dict[str, bytes]  # every input file's bytes by its path, for workers that may not see this machine's files
    eval_size: int  # a study's cell: the evaluator's size and device (restyle.study.runner.run_cell)
    eval_device: str


class Outcome(TypedDict, total=False):
    """What a task gives back. ``error``: "" when it ran; else the one line that says why not, and the
    outcome has no other key (a task function's exception, a worker that died, an outcome that could not
    be sent back: every backend's failure reads so). A run's output (:func:`restyle.executors.runs.result_outcome`)
    comes with the rest."""

    error: Required[str]
    image: Any  # H x W x 3 uint8 array
    pixels: Any  # H x W x 3 float32 array, or None
    history: list[dict[str, float]]
    model: str  # the backbone it ran on
    notes: list[str]
    device: str
    precision: str
    stopped_early: str | None
    stop_reason: str
    seconds: float  # wall time on the worker
    pid: int
    backbone_loads: int  # backbones the worker process has built so far
    metrics: dict[str, float]  # a study's cell: its scores, and the model again (run_cell)
    model_used: str

TaskFn = Callable[[Task], Outcome]
K = TypeVar("K", bound=Hashable)


@runtime_checkable
class Executor(Protocol):
    """Runs tasks somewhere and hands their outcomes back (see the module docstring)."""

    def map_unordered(self, fn: TaskFn, tasks: Iterable[tuple[K, Task]]) -> Iterator[tuple[K, Outcome]]:
        """Yield ``(key, fn(task))`` for every ``(key, task)`` as each finishes; a failure is ``{"error": ...}``."""
        ...

    def describe(self) -> str:
        """How the tasks run, for reports and summaries: ``"2 process(es), 4 torch thread(s) each"``."""
        ...


def report_all(executor: Executor, fn: TaskFn, tasks: Iterable[tuple[int, Task]],
               finished: Callable[[int, Outcome], None], unreadable: list[tuple[int, Outcome]]) -> None:
    """Run ``tasks`` through ``executor``, handing each outcome to ``finished`` as it comes back,
    and the ``unreadable`` ones (tasks whose inputs could not be read, filled in while ``tasks`` is
    consumed) between them and at the end."""
    for i, outcome in executor.map_unordered(fn, tasks):
        finished(i, outcome)
        while unreadable:
            finished(*unreadable.pop(0))
    while unreadable:
        finished(*unreadable.pop(0))


def shares_files(executor: Any) -> bool:
    """Whether ``executor``'s workers see this machine's files (its ``shares_files``, default True).
    When they may not, tasks carry their inputs as bytes (:func:`restyle.executors.runs.make_task`)."""
    return bool(getattr(executor, "shares_files", True))


def one_line(text: str) -> str:
    """``text`` on one line (an error message for a summary row or a terminal line)."""
    return " ".join(str(text).split())


def error_outcome(err: BaseException, context: str = "") -> Outcome:
    """The outcome of a task that failed with ``err``: restyle's own errors as they read (the
    line ``restyle run`` prints after ``restyle: error:``), others with their type; one line."""
    text = str(err) if isinstance(err, RestyleError) else f"{type(err).__name__}: {err}"
    return {"error": one_line(f"{context}: {text}" if context else text)}


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


def check_devices(devices: Sequence[str]) -> None:
    """Refuse, in one line, a ``--devices`` list naming a device that is not ``cpu`` or a present GPU."""
    for d in devices:
        if not is_device(d):
            raise ConfigError(f"--devices: unknown device '{d}'; write e.g. cuda:0,cuda:1 or cpu")
    if any(d.startswith("cuda") for d in devices):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--devices names CUDA devices, but no CUDA GPU is available")
        n = torch.cuda.device_count()
        bad = [d for d in devices if d.startswith("cuda:") and int(d.split(":")[1]) >= n]
        if bad:
            raise ConfigError(f"--devices: {', '.join(bad)} not present ({n} GPU(s): cuda:0..cuda:{n - 1})")


class OnceFilter(logging.Filter):
    """Let each distinct notice through once (every task of a fallback batch says the same)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def set_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads (when ``threads`` is given); the previous setting, or None."""
    if threads is None:
        return None
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    return saved


def init_worker(threads: int | None) -> None:
    """A worker process's set-up: ``threads`` torch threads, each distinct notice logged once."""
    set_threads(threads)
    log.addFilter(OnceFilter())


class InProcessExecutor:
    """Run the tasks here, one after another. With ``threads``, torch uses that many threads while
    the tasks run (torch's setting is process-wide; it is restored afterwards). Each distinct log
    notice is shown once while the tasks run."""

    shares_files = True

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
        saved = set_threads(self.threads)
        try:
            for key, task in tasks:
                yield key, call(fn, task)
        finally:
            log.removeFilter(once)
            set_threads(saved)
