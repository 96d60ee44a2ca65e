"""The engine: device and precision (:mod:`.backend`), the run (:mod:`.transfer`).

It emits progress and knows nothing about terminals, HTTP or clusters."""

from restyle.engine.transfer import Result, StyleTransfer

__all__ = ["Result", "StyleTransfer"]
