"""The engine: device and precision (:mod:`.backend`), the objective (:mod:`.objective`), its
targets (:mod:`.targets`), the optimisation loop (:mod:`.loop`) and the run that strings them
together stage by stage (:mod:`.transfer`), with typed progress events (:mod:`.events`).

It emits progress and knows nothing about terminals, HTTP or clusters."""

from restyle.engine.transfer import Result, StyleTransfer

__all__ = ["Result", "StyleTransfer"]
