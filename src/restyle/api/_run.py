"""Single runs: stylise, score, read a run's record."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from restyle import metrics
from restyle.config import Config
from restyle.engine import Result
from restyle.engine.events import Event, EventHandler, Progress
from restyle.errors import ConfigError
from restyle.io import files, images, record
from restyle.methods import Method, method_for, option_files, run_inputs
from restyle.metrics import Scores


def style_list(styles: Any) -> list[Any]:
    """One style or several, as a list."""
    if isinstance(styles, (str, Path)) or not isinstance(styles, Sequence):
        return [styles]
    return list(styles)


def resolve_config(config: Config | None, preset: str | None, options: Mapping[str, Any]) -> Config:
    """The run's config: ``options`` over ``preset`` (or over the defaults), or over ``config``."""
    if config is None:
        return Config.from_options(preset=preset, **options)
    if preset is not None:
        raise ConfigError("give either a config or a preset, not both")
    return config.replace(**options) if options else config


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
    method: Method | str | None = None,
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
    ``method``: the :class:`~restyle.methods.Method` that makes the image, or a method's name (the
    config's ``method``; default: the one the config names, :func:`restyle.methods.method_for`).

    Returns a :class:`Result`: ``.image`` (PIL), ``.history`` (one dict per iteration), ``.config``.
    """
    styles = style_list(styles)
    if isinstance(method, str):  # a method's name is the config's option
        options, method = {**options, "method": method}, None
    config = resolve_config(config, preset, options)
    if quality is not None and output is None:
        raise ConfigError("--quality needs an output (-o OUT.jpg or OUT.webp)")
    method = method if method is not None else method_for(config)
    method.check(config, len(styles))
    inputs = run_inputs(content, styles, config)
    if output is not None:
        kept = [("image the run is reproduced from", str(p)) for p in keep]
        record.check_output(output, inputs + kept, history=history, plot=plot,
                            save_every=save_every, quality=quality)
        if save_every:
            on_event = _saving_every(save_every, Path(output), on_event)
    result = method.run(content, styles, config, on_event=on_event, on_iteration=on_iteration)
    if output is not None:
        result.written = record.save_result(result, output, content, styles, history=history, plot=plot,
                                            quality=quality, files=option_files(config))
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
    return metrics.score(output, content, styles, style_blend=style_blend)


def describe_evaluator() -> str:
    """The fixed evaluator behind :func:`score`, in words (for reports and ``restyle score --json``)."""
    return metrics.describe()


def format_scores(values: Mapping[str, float]) -> str:
    """Scores as the aligned table ``restyle score`` prints."""
    return metrics.format_table(dict(values))


def read_run_record(path: str | Path) -> dict[str, Any]:
    """The run record saved inside a restyle output (config, inputs and their SHA-256, device, ...)."""
    return record.read_run_record(path)
