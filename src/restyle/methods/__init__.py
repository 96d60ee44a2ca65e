"""Methods of stylising an image behind one protocol (:class:`Method`): the optimiser
(:class:`Optimisation`), a trained feed-forward network (:class:`FastTransfer`, ``--fast-model``),
universal style transfer for any painting (:class:`UniversalTransfer`), and any method another
package installs under the entry-point group ``restyle.methods``. Front-ends, batches, studies,
videos and the server reach them through :func:`method_for` and the registry
(:mod:`restyle.methods.registry`), so a new method is added here alone, or in a package of its own."""

from __future__ import annotations

from restyle.methods.base import IterationHandler, Method, MethodBase, MethodOption
from restyle.methods.fast import FastTransfer
from restyle.methods.optimise import Optimisation
from restyle.methods.registry import (
    check_request,
    listed_fields,
    method_for,
    method_name,
    method_options,
    methods,
    option_files,
    owned_fields,
    run_inputs,
)
from restyle.methods.universal import UniversalTransfer

__all__ = ["FastTransfer", "IterationHandler", "Method", "MethodBase", "MethodOption", "Optimisation",
           "UniversalTransfer", "check_request", "method_for", "method_name", "method_options", "methods",
           "listed_fields", "option_files", "owned_fields", "run_inputs"]
