"""The universal method: any painting in one pass, no training per painting (Li et al. 2017,
"Universal Style Transfer via Feature Transforms"). VGG19 encodes the photo and each painting to
``block4_conv1``; a feature transform (:mod:`restyle.nn.wct`) gives the photo's features the
paintings' statistics (blended by ``--style-blend``, limited to regions by ``--mask`` or
``--label-image``, mixed with the photo's own by ``--strength``); a decoder trained only on
photographs (:mod:`restyle.train.decoder`) turns them back into an image. The class declares the
method; :mod:`restyle.methods.universalrun` runs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from restyle.config import Config
from restyle.errors import ConfigError
from restyle.methods.base import IterationHandler, MethodBase, MethodOption

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from restyle.engine import Result
    from restyle.engine.events import EventHandler

#: The feature transforms ``--transform`` takes (:data:`restyle.nn.wct.TRANSFORMS`).
TRANSFORMS = ("wct", "adain")


class UniversalTransfer(MethodBase):
    """Any painting, or several blended, in one pass (``--method universal``)."""

    name = "universal"
    summary = "any painting in about a second: the photo's features given the painting's statistics, decoded"
    options: tuple[MethodOption, ...] = (
        MethodOption("transform", "the feature transform: wct (whitening and colouring, Li et al.) or adain "
                     "(channel means and deviations, Huang & Belongie)", default="wct", metavar="wct|adain",
                     choices=TRANSFORMS),
        MethodOption("decoder", "a decoder file (python -m restyle.train.decoder) instead of the bundled one",
                     file=True, metavar="PATH"),
        MethodOption("levels", "how many of the decoder file's levels to run, deepest first (default: all; "
                     "fewer: faster, coarser strokes)", type=int, metavar="N", minimum=1),
    )

    def check(self, config: Config, paintings: int) -> None:
        super().check(config, paintings)
        transform = config.method_options.get("transform", "wct")
        if transform not in TRANSFORMS:
            raise ConfigError(f"unknown --transform '{transform}'; choose one of: {', '.join(TRANSFORMS)}")
        levels = config.method_options.get("levels")
        if levels is not None and (not isinstance(levels, int) or levels < 1):
            raise ConfigError(f"--levels must be a whole number >= 1, got {levels}")
        from restyle.methods.universalrun import decoder_path

        decoder_path(config.method_options.get("decoder"))

    def run(self, content: Any, styles: Sequence[Any], config: Config, *, on_event: EventHandler | None = None,
            on_iteration: IterationHandler | None = None, start: torch.Tensor | None = None,
            terms: Sequence[nn.Module] = ()) -> Result:
        from restyle.methods.universalrun import run_universal

        return run_universal(self, content, styles, config, on_event=on_event, on_iteration=on_iteration,
                             start=start, terms=terms)
