"""Methods of stylising an image behind one protocol (:class:`Method`): today the optimiser
(:class:`Optimisation`). Front-ends, batches, studies and videos call :func:`method_for` and
never a method's class, so a new method is added here alone."""

from __future__ import annotations

from restyle.config import Config
from restyle.methods.base import IterationHandler, Method
from restyle.methods.optimise import Optimisation

__all__ = ["IterationHandler", "Method", "Optimisation", "method_for"]


def method_for(config: Config) -> Method:
    """The method that runs ``config``."""
    return Optimisation()
