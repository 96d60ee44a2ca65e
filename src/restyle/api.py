"""The Python API: ``restyle.stylize(content, styles, **options)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from restyle.config import Config
from restyle.engine import Result, StyleTransfer
from restyle.errors import ConfigError


def stylize(
    content: Any,
    styles: Any,
    config: Config | None = None,
    *,
    output: str | Path | None = None,
    preset: str | None = None,
    on_iteration=None,
    **options: Any,
) -> Result:
    """Stylise ``content`` with one or more ``styles``.

    ``content``/``styles``: paths, PIL images, NumPy arrays (HxWx3, uint8 or float 0–1) or tensors.
    ``options`` are :class:`Config` fields (``size=256, iterations=200, style_weight=1e4, ...``),
    applied over ``preset`` (``"gatys"``, ``"seed"``, ...) or over ``config`` when given.
    With ``output``, the PNG (run config embedded) and its ``.losses.csv``/``.losses.png`` are written.

    Returns a :class:`Result`: ``.image`` (PIL), ``.history`` (one dict per iteration), ``.config``.
    """
    if isinstance(styles, (str, Path)) or not isinstance(styles, Sequence):
        styles = [styles]
    if config is None:
        config = Config.from_options(preset=preset, **options)
    elif preset is not None:
        raise ConfigError("give either a config or a preset, not both")
    elif options:
        config = config.replace(**options)
    if output is not None:
        from restyle.images import check_output_path

        check_output_path(output)
    result = StyleTransfer(config).run(content, list(styles), on_iteration=on_iteration)
    if output is not None:
        from restyle.outputs import save_result

        save_result(result, output, content, styles)
    return result
