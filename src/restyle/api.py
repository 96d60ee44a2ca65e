"""The Python API, and the only entry points the front-ends (CLI, server, batch) call.

>>> import restyle
>>> result = restyle.stylize("photo.jpg", ["painting.jpg"], size=256)
>>> restyle.score("out.png", "photo.jpg", "painting.jpg").as_dict()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from restyle.config import Config
from restyle.engine import Result, StyleTransfer
from restyle.engine.events import Event, EventHandler, Finished, Progress, Started
from restyle.engine.events import as_dict as event_dict
from restyle.errors import ConfigError
from restyle.io import files, images, record
from restyle.metrics import Scores, describe, format_table
from restyle.study import Cell, StudySummary
from restyle.study import build_grid as _build_grid
from restyle.study import preset_grid as _preset_grid
from restyle.study import run_study as _run_study

__all__ = [
    "Config", "Event", "EventHandler", "Finished", "Progress", "Result", "Scores", "Started", "build_grid",
    "changed_inputs", "describe_evaluator", "event_dict", "format_scores", "preset_grid", "read_run_record",
    "run_study", "score", "stylize",
]


def stylize(
    content: Any,
    styles: Any,
    config: Config | None = None,
    *,
    output: str | Path | None = None,
    preset: str | None = None,
    on_event: EventHandler | None = None,
    on_iteration: Callable[[dict[str, float], Any], None] | None = None,
    history: bool = True,
    plot: bool = True,
    save_every: int = 0,
    quality: int | None = None,
    keep: Sequence[str | Path] = (),
    **options: Any,
) -> Result:
    """Stylise ``content`` with one or more ``styles``.

    ``content``/``styles``: paths, PIL images, NumPy arrays (HxWx3, uint8 or float 0–1) or tensors.
    ``options`` are :class:`Config` fields (``size=256, iterations=200, style_weight=1e4, ...``),
    applied over ``preset`` (``"gatys"``, ``"seed"``, ...) or over ``config`` when given.
    With ``output``, the image (run record embedded) and, unless ``history``/``plot`` are False,
    its ``.losses.csv``/``.losses.png`` are written; the output path is checked before the run.
    Its extension picks the format: ``.png``, ``.jpg``/``.jpeg`` and ``.webp`` (``quality`` 1-100,
    default 95), ``.tif``/``.tiff`` (16-bit RGB), ``.bmp`` (record in ``OUT.json`` beside it).
    An output (or a file written beside it) that is one of the run's inputs is refused.
    ``on_event`` receives the typed progress events of :mod:`restyle.engine.events`;
    ``save_every`` N > 0 also writes ``OUT.iterNNNN.png`` every N iterations (needs ``output``).

    ``keep``: more files the outputs must never overwrite (e.g. the image a run is reproduced from).

    Returns a :class:`Result`: ``.image`` (PIL), ``.history`` (one dict per iteration), ``.config``.
    """
    if isinstance(styles, (str, Path)) or not isinstance(styles, Sequence):
        styles = [styles]
    styles = list(styles)
    if config is None:
        config = Config.from_options(preset=preset, **options)
    elif preset is not None:
        raise ConfigError("give either a config or a preset, not both")
    elif options:
        config = config.replace(**options)
    if quality is not None and output is None:
        raise ConfigError("--quality needs an output (-o OUT.jpg or OUT.webp)")
    if config.style_blend is not None and len(config.style_blend) != len(styles):
        raise ConfigError(f"--style-blend has {len(config.style_blend)} weight(s) for {len(styles)} style image(s)")
    if output is not None:
        inputs = record.run_inputs(content, styles, config) + [("image the run is reproduced from", str(p)) for p in keep]
        record.check_output(output, inputs, history=history, plot=plot,
                            save_every=save_every, quality=quality)
        if save_every:
            on_event = _saving_every(save_every, Path(output), on_event)
    result = StyleTransfer(config).run(content, styles, on_event=on_event, on_iteration=on_iteration)
    if output is not None:
        result.written = record.save_result(result, output, content, styles, history=history, plot=plot,
                                            quality=quality)
    return result


def _saving_every(every: int, output: Path, then: EventHandler | None) -> EventHandler:
    """An event handler that writes ``OUT.iterNNNN.png`` every ``every`` iterations, then calls ``then``."""
    stem = output.with_suffix("")

    def handle(event: Event) -> None:
        if isinstance(event, Progress) and event.image is not None:
            i = event.iteration
            if i and i % every == 0 and i < event.total - 1:
                files.save_png(images.to_image(event.image.float().cpu()), f"{stem}.iter{i:04d}.png")
        if then is not None:
            then(event)

    return handle


def changed_inputs(run_record: Mapping[str, Any]) -> list[str]:
    """The input files of a saved run whose SHA-256 differs now (missing ones are left to the loader)."""
    return record.changed_inputs(run_record)


def score(output: Any, content: Any, styles: Any, *, style_blend: Sequence[float] | None = None) -> Scores:
    """The fixed evaluator's metrics of ``output`` against its content and style image(s)."""
    from restyle.metrics import score as _score

    return _score(output, content, styles, style_blend=style_blend)


def describe_evaluator() -> str:
    """The fixed evaluator behind :func:`score`, in words (for reports and ``restyle score --json``)."""
    return describe()


def format_scores(values: Mapping[str, float]) -> str:
    """Scores as the aligned table ``restyle score`` prints."""
    return format_table(dict(values))


def read_run_record(path: str | Path) -> dict[str, Any]:
    """The run record saved inside a restyle output (config, inputs and their SHA-256, device, ...)."""
    return record.read_run_record(path)


def build_grid(contents: Sequence[str], styles: Sequence[str], layer_sets: Sequence[str] | None = None,
               sweeps: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
               options: Mapping[str, Any] | None = None, preset: str | None = None) -> list[Cell]:
    """The cells of a study (see :func:`restyle.study.build_grid`)."""
    return _build_grid(contents, styles, layer_sets, sweeps, options, preset)


def preset_grid(name: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Cell]:
    """The cells of a study preset such as ``seed-table``."""
    return _preset_grid(name, options, **kwargs)


def run_study(cells: Sequence[Cell], out_dir: str | Path, **kwargs: Any) -> StudySummary:
    """Run (or resume) a study's cells into ``out_dir`` and write its report."""
    return _run_study(cells, out_dir, **kwargs)


# ---- for front-ends that take images over the network (restyle serve) ------------------------------------


def check_image(path: str | Path, role: str = "image", *, name: str | None = None,
                max_pixels: int | None = None) -> tuple[int, int]:
    """Load the image file at ``path`` exactly as ``restyle run`` loads its inputs and return its
    (width, height), or raise the same one-line :class:`~restyle.errors.InputImageError`, naming the
    image ``name`` (e.g. an upload's file name) instead of ``path`` when given. The error's ``problem``
    attribute says which kind of problem it is: ``"too-large"`` (over ``max_pixels``, e.g. a decompression
    bomb), ``"too-small"`` (a side under 2 pixels) or ``"unreadable"`` (not an image, truncated, corrupt)."""
    import os

    from restyle.errors import InputImageError

    limit = images.DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with images.load_image(path, max_pixels=limit, role=role) as img:
            return img.size
    except InputImageError as err:
        message = str(err)
        if name is not None:
            shown = " ".join(name.split()).replace("'", "’")
            message = message.replace(f"{role} '{os.fspath(path)}'", f"{role} '{shown}'", 1)
        problem = "unreadable"
        size = _header_size(path)
        if size is not None and size[0] * size[1] > limit:
            problem = "too-large"
        elif size is not None and min(size) < images.MIN_SIDE:
            problem = "too-small"
        error = InputImageError(message)
        error.problem = problem  # type: ignore[attr-defined]
        raise error from None


def _header_size(path: str | Path) -> tuple[int, int] | None:
    """The (width, height) an image file's header declares, or None when it has no readable header."""
    from PIL import Image

    try:
        with files._pillow_pixel_limit(None), Image.open(path) as img:  # a bomb's header too; nothing is decoded
            return img.size
    except Exception:  # noqa: BLE001 - any failure to read a header means "no size"
        return None


def example_images() -> dict[str, Path]:
    """The bundled example images (``restyle/examples``), by file name."""
    import importlib.resources

    folder = Path(str(importlib.resources.files("restyle") / "examples"))
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")}


def encode_image(image: Any, *, longest: int | None = None, format: str = "png", quality: int = 85) -> bytes:
    """``image`` (a path, PIL image, array or tensor, e.g. :attr:`Progress.image`) as PNG or JPEG bytes,
    scaled down so its longest side is at most ``longest`` (for previews and thumbnails)."""
    import io

    from PIL import Image

    if format not in ("png", "jpeg"):
        raise ConfigError(f"unknown image format '{format}'; choose png or jpeg")
    img = images.load_image(image, role="image") if not hasattr(image, "float") else images.to_image(
        image.detach().float().cpu())
    if longest is not None and max(img.size) > longest:
        img = img.copy()
        img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if format == "png":
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def loss_history_csv(rows: Sequence[Mapping[str, float]]) -> str:
    """History rows (as ``on_iteration`` receives them) in the format of ``OUT.losses.csv``."""
    from restyle.io.history import history_csv

    return history_csv([dict(r) for r in rows])


def available_devices() -> list[str]:
    """The devices a run can use here: ``cuda:0``, ``cuda:1``, ... when CUDA is available, else ``cpu``."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


__all__ += ["available_devices", "check_image", "encode_image", "example_images", "loss_history_csv"]


# ---- batches (restyle batch) and where runs execute ---------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402 - appended section

from restyle.batch import BatchEvent, BatchItem, BatchStarted, BatchSummary, ItemFinished, ItemResult  # noqa: E402


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
    from restyle.batch import plan

    return plan([str(p) for p in inputs], [str(p) for p in styles], out_dir, manifest=manifest, options=options,
                preset=preset, fmt=format)


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
    from restyle.batch import run_batch as _run

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
    from restyle.executors.ray import RayExecutor

    return RayExecutor(address, cpus_per_task=threads, gpus_per_task=gpus, max_retries=max_retries)


__all__ += ["BatchEvent", "BatchItem", "BatchStarted", "BatchSummary", "ItemFinished", "ItemResult", "plan_batch",
            "ray_executor", "run_batch"]

if TYPE_CHECKING:
    from restyle.executors import Executor
    from restyle.executors.ray import RayExecutor


# ---- video (the restyle[video] extra: PyAV and OpenCV load when a video function runs) -------------------

from typing import TYPE_CHECKING  # noqa: E402

from restyle.video.events import FrameFinished, FrameStarted, VideoFinished, VideoStarted  # noqa: E402

if TYPE_CHECKING:
    from restyle.video import VideoResult, VideoScores


def stylize_video(
    input: str | Path,
    styles: Any,
    config: Config | None = None,
    *,
    output: str | Path,
    preset: str | None = None,
    temporal_weight: float | None = None,
    first_iterations: int | None = None,
    frames: str | None = None,
    fps: float | None = None,
    flow: str = "medium",
    crf: int = 18,
    work_dir: str | Path | None = None,
    keep_frames: bool = False,
    on_event: Callable[[Any], None] | None = None,
    **options: Any,
) -> VideoResult:
    """Stylise the video ``input`` (a file PyAV decodes, a GIF, or a folder of numbered frames) with
    ``styles`` (paths) into ``output``: a video file (H.264 where FFmpeg has libx264, the audio copied),
    a ``.gif``, or ``DIR/`` for PNG frames; same frame count and rate as the input unless ``frames``
    (``"A:B"``) or ``fps`` say otherwise. ``config``/``preset``/``options`` are each frame's run, as in
    :func:`stylize`, but ``iterations`` defaults to 100. ``temporal_weight`` (default
    :data:`restyle.video.DEFAULT_TEMPORAL_WEIGHT`; 0 = independent frames) weighs closeness to the
    previous stylised frame warped by the optical flow; the first frame gets ``first_iterations``
    (default 3 x the config's iterations, with a temporal weight; else the same). Finished frames are kept
    in ``work_dir`` (default ``OUTPUT.work/``) and a rerun continues from them. ``on_event`` receives
    :class:`VideoStarted`, per frame :class:`FrameStarted`, the engine's events, :class:`FrameFinished`,
    then :class:`VideoFinished`."""
    from restyle.video import DEFAULT_TEMPORAL_WEIGHT, VideoOptions
    from restyle.video import stylize_video as _stylize_video
    from restyle.video.stylize import DEFAULT_ITERATIONS

    if isinstance(styles, (str, Path)) or not isinstance(styles, Sequence):
        styles = [styles]
    if config is None:
        config = Config.from_options(preset=preset, **{"iterations": DEFAULT_ITERATIONS, **options})
    elif preset is not None:
        raise ConfigError("give either a config or a preset, not both")
    elif options:
        config = config.replace(**options)
    video = VideoOptions(DEFAULT_TEMPORAL_WEIGHT if temporal_weight is None else float(temporal_weight),
                         first_iterations, frames, fps, flow, crf)
    return _stylize_video(input, list(styles), config, output, video, work_dir=work_dir, keep_frames=keep_frames,
                          on_event=on_event)


def score_video(output: str | Path, content: str | Path | None = None, styles: Sequence[str | Path] | None = None,
                *, style_blend: Sequence[float] | None = None) -> VideoScores:
    """The temporal warping error of the video ``output`` against its input video ``content`` (default:
    the one its record names), the input's own, and the means over frames of :func:`score`'s metrics
    (the style ones when ``styles`` are given or recorded)."""
    from restyle.video import score_video as _score_video

    return _score_video(output, content, styles, style_blend=style_blend)


__all__ += ["FrameFinished", "FrameStarted", "VideoFinished", "VideoStarted", "score_video", "stylize_video"]
