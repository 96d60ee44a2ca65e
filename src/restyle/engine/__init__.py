"""The engine: device and precision (:mod:`.backend`), the objective (:mod:`.objective`), its
targets (:mod:`.targets`), the optimisation loop (:mod:`.loop`) and the run that strings them
together stage by stage (:mod:`.transfer`) into a :class:`Result` (:mod:`.result`), with typed progress events
(:mod:`.events`).

It emits progress and knows nothing about terminals, HTTP or clusters. Its names load on first use, so a
module that only needs :mod:`.events` (the method declarations, the command line's parsers) loads no torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr

if TYPE_CHECKING:
    from restyle.engine.result import Result
    from restyle.engine.transfer import StyleTransfer

__all__ = ["Result", "StyleTransfer"]
__getattr__ = lazy_getattr(__name__, {"Result": "restyle.engine.result", "StyleTransfer": "restyle.engine.transfer"})
