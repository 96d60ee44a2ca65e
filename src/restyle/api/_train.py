"""Training fast models: :func:`train_fast_model` (``restyle train``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from restyle.config import Config
from restyle.methods.fastmodel import FastModel
from restyle.nn.transformer import NetShape
from restyle.train import TrainEvent, TrainOptions, train

#: ``restyle train``'s defaults where they differ from a run's: 256-px crops, and the paintings
#: at twice that (512 px, as a default 512-px ``restyle run`` sees them).
TRAIN_DEFAULTS: dict[str, Any] = {"size": 256, "style_scale": 2.0}


def train_fast_model(styles: Any, photos: str | Path | None, output: str | Path, *, config: Config | None = None,
                     width: int = 12, blocks: int = 4, kernel: int = 5, steps: int = 2000, batch: int = 4,
                     lr: float = 1e-3, every: int = 200, held_out: int = 4, resume: bool = False,
                     init_from: str | Path | None = None,
                     on_event: Callable[[TrainEvent], None] | None = None, **options: Any) -> FastModel:
    """Train a fast model for one or more ``styles`` (image paths) on the photos under ``photos``
    (None: the photo corpus ``scripts/corpus.sh`` builds, less its held-out photos)
    and write it to ``output`` (``.pt``), with a checkpoint (``NAME.ckpt.pt``) and a sample sheet of
    ``held_out`` photos it never trains on (``NAME.samples/``) every ``every`` steps.

    The losses are a run's (``options`` are :class:`Config` fields: layers, weights,
    ``strength``, ``style_loss``, ``preserve_color``, ``device``, ``precision``, ``seed``...);
    ``size`` is the side of the square training crops (default 256) and ``style_scale`` sizes the
    paintings relative to it (default 2). ``width``/``blocks``/``kernel`` shape the network
    (:class:`~restyle.nn.transformer.NetShape`; Johnson et al.'s is 32/5/9). ``resume`` continues
    from the checkpoint of a run with the same styles and options; ``init_from`` starts from another
    model's parameters (same shape and styles: fine-tuning)."""
    style_list = [styles] if isinstance(styles, (str, Path)) else list(styles)
    if config is None:
        config = Config.from_options(**{**TRAIN_DEFAULTS, **options})
    elif options:
        config = config.replace(**options)
    opts = TrainOptions(steps=steps, batch=batch, lr=lr, every=every, held_out=held_out, seed=config.seed)
    exclude: list[Path] = []
    if photos is None:
        from restyle.train.corpus import training_folder

        photos, exclude = training_folder()
    return train(style_list, photos, output, config, NetShape(width, blocks, kernel, len(style_list)), opts,
                 resume=resume, init_from=init_from, on_event=on_event, exclude=exclude)
