"""Batches (``restyle batch``) and where their runs execute."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from restyle.api._web import check_requests
from restyle.batch import BatchEvent, BatchItem, BatchSummary, plan
from restyle.batch import run_batch as _run
from restyle.errors import ConfigError

if TYPE_CHECKING:
    from restyle.executors import Executor
    from restyle.executors.ray import RayExecutor


def plan_batch(inputs: Sequence[str | Path] = (), styles: Sequence[str | Path] = (), out_dir: str | Path = ".", *,
               manifest: str | Path | None = None, options: Mapping[str, Any] | None = None,
               preset: str | None = None, format: str = "png") -> list[BatchItem]:
    """The outputs of a batch (:class:`restyle.batch.BatchItem`: content, styles, config, output
    path): each of ``inputs`` (image files, folders searched recursively for image files, globs)
    × each of ``styles``, then each row of ``manifest`` (a ``.csv`` or ``.jsonl`` file with a row
    per output: content, styles and any run option). ``options`` are run options for all (a
    manifest row's own win), over ``preset``; ``format`` is the output format's extension
    (png, jpg, webp, tif, bmp). Outputs are named ``OUT_DIR/{content}__{style}.{format}``, made
    safe and unique. Bad usage: a one-line :class:`ConfigError`."""
    items = plan([str(p) for p in inputs], [str(p) for p in styles], out_dir, manifest=manifest, options=options,
                 preset=preset, fmt=format)
    check_requests((item.source or item.content, item.content, item.config) for item in items)
    return items


def run_batch(items: Sequence[BatchItem], out_dir: str | Path, *, jobs: int = 1, devices: Sequence[str] | None = None,
              threads: int | None = None, ray: str | None = None, ray_gpus: float | None = None,
              executor: Executor | None = None, force: bool = False, quality: int | None = None,
              dry_run: bool = False, on_event: Callable[[BatchEvent], None] | None = None) -> BatchSummary:
    """Make the outputs of :func:`plan_batch` in ``out_dir``, skipping those an earlier run
    finished (same config and input files), and write ``OUT_DIR/batch.csv``. Runs in this process,
    in ``jobs`` local processes (``devices`` dealt round-robin), on a Ray cluster (``ray``:
    ``"auto"``, an address, or ``"local"``; one task per output, ``ray_gpus`` GPUs each, default 1
    when the cluster has GPUs; ``threads`` CPUs each), or on ``executor``. A failed output is
    recorded and the others go on. ``dry_run``: only say which outputs would run. ``on_event``
    receives :class:`restyle.batch.BatchStarted` and :class:`restyle.batch.ItemFinished`.
    Returns a :class:`restyle.batch.BatchSummary`."""
    common: dict[str, Any] = {"force": force, "quality": quality, "on_event": on_event, "dry_run": dry_run}
    if ray is None or dry_run:
        return _run(items, out_dir, executor=executor, jobs=jobs, devices=devices, threads=threads, **common)
    if devices or jobs > 1 or executor is not None:
        raise ConfigError("--ray places the outputs on the cluster: drop --jobs and --devices")
    with ray_executor(ray, threads=threads, gpus=ray_gpus) as on_ray:
        return _run(items, out_dir, executor=on_ray, **common)


def ray_executor(address: str | None = "auto", *, threads: int | None = None, gpus: float | None = None,
                 max_retries: int = 3) -> RayExecutor:
    """An executor on a Ray cluster, for :func:`run_batch` or :func:`run_study` (``executor=``):
    ``address`` ``"auto"`` ($RAY_ADDRESS, or the cluster started here with ``ray start --head``), an
    address (``HOST:6379``, ``ray://HOST:10001``) or ``"local"`` (a private instance on this
    machine). One task per output with ``threads`` CPUs (default 1) and ``gpus`` GPUs (default 1
    when the cluster has GPUs, else 0); a task whose worker dies is retried ``max_retries`` times.
    Use it as a context manager (it disconnects, and a ``local`` instance shuts down, on exit).
    Needs ``pip install 'restyle[ray]'`` (else a one-line :class:`ConfigError`)."""
    from restyle.executors.ray import RayExecutor  # Ray loads only when asked for

    return RayExecutor(address, cpus_per_task=threads, gpus_per_task=gpus, max_retries=max_retries)
