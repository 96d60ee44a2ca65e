"""Methods of stylising an image behind one protocol (:class:`Method`): today the optimiser
(:class:`Optimisation`) and a trained feed-forward network (:class:`FastTransfer`, with
``--fast-model``). Front-ends, batches, studies and videos call :func:`method_for` and
never a method's class, so a new method is added here alone."""

from __future__ import annotations

from restyle.config import Config
from restyle.methods.base import IterationHandler, Method
from restyle.methods.fast import FastTransfer
from restyle.methods.optimise import Optimisation

__all__ = ["FastTransfer", "IterationHandler", "Method", "Optimisation", "method_for"]


def method_for(config: Config) -> Method:
    """The method that runs ``config``."""
    return FastTransfer() if config.fast_model is not None else Optimisation()
