"""The fast method: a trained feed-forward network (``restyle train``) stylises a photo in one
forward pass (Johnson et al. 2016), optionally refined by the optimiser (``--refine N``). The
class declares the method; :mod:`restyle.methods.fastrun` runs it (imported on first run, so that
the registry and the command line's parsers load no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from restyle.config import Config
from restyle.errors import ConfigError
from restyle.methods.base import IterationHandler, MethodBase, Paintings

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from restyle.engine import Result
    from restyle.engine.events import EventHandler


class FastTransfer(MethodBase):
    """Runs a trained transformation network (``config.fast_model``): the styles are the model's,
    so ``styles`` must be empty; ``--blend`` weighs the model's styles. Events: ``Started`` (total
    0), then ``Finished``; with ``--refine N`` the optimiser's events follow from the network's
    output, towards the paintings stored in the model file."""

    name = "fast"
    summary = "a trained network (--fast-model) paints in one pass; its styles come with it"
    paintings: Paintings = "none"
    owns: tuple[str, ...] = ("fast_model", "refine")

    def iterative(self, config: Config) -> bool:
        return config.refine > 0

    def check(self, config: Config, paintings: int) -> None:
        if paintings:
            raise ConfigError("a fast model carries its own styles: give the content image alone "
                              "(or leave out --fast-model to optimise towards style images)")
        if config.fast_model is None:
            raise ConfigError("the fast method needs --fast-model")
        if not config.fast_model.lower().endswith(".onnx"):
            from restyle.methods.fastmodel import check_blend, load_model

            check_blend(load_model(config.fast_model), config.style_blend)

    def run(self, content: Any, styles: Sequence[Any], config: Config, *, on_event: EventHandler | None = None,
            on_iteration: IterationHandler | None = None, start: torch.Tensor | None = None,
            terms: Sequence[nn.Module] = ()) -> Result:
        from restyle.methods.fastrun import run_fast

        return run_fast(self, content, styles, config, on_event=on_event, on_iteration=on_iteration, start=start,
                        terms=terms)
