"""The optimisation method (Gatys et al. 2016): the engine's :class:`~restyle.engine.StyleTransfer`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from restyle.config import Config
from restyle.methods.base import IterationHandler, MethodBase, Paintings

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from restyle.engine import Result
    from restyle.engine.events import EventHandler


class Optimisation(MethodBase):
    """Optimises the output image (L-BFGS or Adam) against the content, style and TV losses.

    Each run builds a fresh engine (the backbone itself is cached per process, so this costs
    about a millisecond) and so carries nothing into the next run."""

    name = "optimise"
    summary = "optimises the picture against the paintings' style (Gatys et al.): slow, the best look"
    paintings: Paintings = "required"
    one_pass = False

    def iterative(self, config: Config) -> bool:
        return True

    def run(self, content: Any, styles: Sequence[Any], config: Config, *, on_event: EventHandler | None = None,
            on_iteration: IterationHandler | None = None, start: torch.Tensor | None = None,
            terms: Sequence[nn.Module] = ()) -> Result:
        from restyle.engine import StyleTransfer  # on first run: the registry loads no torch

        return StyleTransfer(config).run(content, styles, on_event=on_event, on_iteration=on_iteration,
                                         init_image=start, extra_terms=terms)
