"""The method seam: one protocol that turns (content, styles, config, event handler) into a
:class:`~restyle.engine.Result`. :func:`restyle.api.stylize`, batches, studies, videos and the
server reach every method through it (:func:`restyle.methods.method_for`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn

from restyle.config import Config
from restyle.engine import Result
from restyle.engine.events import EventHandler

IterationHandler = Callable[[dict[str, float], torch.Tensor], None]


@runtime_checkable
class Method(Protocol):
    """A way of stylising an image.

    Contract of ``run(content, styles, config, *, on_event, on_iteration, start, terms)``:

    - ``content``: one image; ``styles``: one or more; each a path, PIL image, ``H x W x 3`` array
      or tensor, loaded with :func:`restyle.io.images.load_image` (its one-line errors).
    - Bad input raises a one-line :class:`~restyle.errors.RestyleError` before the first event.
    - ``on_event`` receives :class:`~restyle.engine.events.Started` first, then one
      :class:`~restyle.engine.events.Progress` per history row (iterations counted from 0, at most
      ``Started.total`` rows), then :class:`~restyle.engine.events.Finished`, all from the calling
      thread; ``on_iteration(row, image)`` gets the same rows as dicts of
      :data:`restyle.io.history.HISTORY_FIELDS`.
    - ``start`` (``1 x 3 x H x W`` in [0, 1], any size) is an image to begin from, and ``terms``
      are extra loss modules (each with a ``weight``, e.g.
      :class:`~restyle.engine.objective.TemporalConsistency`) for methods that optimise; a method
      that does not optimise may ignore both.
    - Returns a :class:`~restyle.engine.Result`: the RGB image at the config's size, its history,
      the config as run (``model`` the backbone actually used), notes, device and precision.
    - Writes no files, and carries no state from one run into the next: one method object may run
      many images (a video's frames) in turn.
    """

    name: str

    def run(self, content: Any, styles: Sequence[Any], config: Config, *, on_event: EventHandler | None = None,
            on_iteration: IterationHandler | None = None, start: torch.Tensor | None = None,
            terms: Sequence[nn.Module] = ()) -> Result: ...
