"""The one registry of methods: the built-in ones and those other packages install under the
entry-point group ``restyle.methods`` (each entry point names a :class:`~restyle.methods.base.Method`
class or instance). :func:`method_for` picks a config's method; :func:`run_inputs` lists a run's
input files from the options flagged as files."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from restyle.config import Config, options
from restyle.errors import ConfigError
from restyle.methods.base import Method, MethodOption
from restyle.methods.fast import FastTransfer
from restyle.methods.optimise import Optimisation
from restyle.methods.universal import UniversalTransfer

GROUP = "restyle.methods"
DEFAULT = "optimise"

def _builtin() -> list[Method]:
    return [Optimisation(), FastTransfer(), UniversalTransfer()]


@functools.cache
def methods() -> dict[str, Method]:
    """Every method by name: the built-in ones, then the installed ones (an installed method may
    not take a built-in's name)."""
    found: dict[str, Method] = {m.name: m for m in _builtin()}
    for ep in entry_points(group=GROUP):
        obj = ep.load()
        method = obj() if isinstance(obj, type) else obj
        if not isinstance(method, Method):
            raise ConfigError(f"entry point '{ep.name}' in {GROUP} is not a restyle method")
        if method.name in found:
            raise ConfigError(f"the installed method '{method.name}' ({ep.value}) takes a built-in method's name")
        found[method.name] = method
    return found


def method_options() -> dict[str, tuple[Method, MethodOption]]:
    """Every installed method's own options by name (``Config.method_options`` keys)."""
    return {o.name: (m, o) for m in methods().values() for o in m.options}


def owned_fields() -> tuple[str, ...]:
    """The Config fields that belong to a method (``--fast-model``, ``--refine``, ...)."""
    return tuple(f for m in methods().values() for f in m.owns)


def listed_fields() -> tuple[str, ...]:
    """The file options of methods whose styles come with a model (``--fast-model``): a network
    front-end offers names for them from a list (``GET /api/models``), never a path."""
    return tuple(f for m in methods().values() if m.paintings == "none" for f in m.owns if options()[f].file)


def _set(config: Config, field: str) -> bool:
    value = getattr(config, field)
    return value is not None and value != 0 and value != [] and value is not False


def method_name(config: Config) -> str:
    """The method ``config`` runs: ``config.method``, or the one whose own options are set, or the
    optimiser. An option that belongs to another method than the one named is a one-line error."""
    table = methods()
    name = config.method
    if name is not None and name not in table:
        raise ConfigError(f"unknown method '{name}'; choose one of: {', '.join(table)}")
    for method in table.values():
        given = [f for f in method.owns if _set(config, f)]
        given += [o.name for o in method.options if o.name in config.method_options]
        if not given:
            continue
        flag = "--" + given[0].replace("_", "-")
        if name is None:
            name = method.name
        elif name != method.name:
            raise ConfigError(f"{flag} belongs to --method {method.name}, not --method {name}")
    return name or DEFAULT


def method_for(config: Config) -> Method:
    """The method that runs ``config`` (:func:`method_name`)."""
    return methods()[method_name(config)]


def check_request(config: Config, paintings: int) -> Method:
    """The config's method, after it has checked the request (one-line errors)."""
    method = method_for(config)
    method.check(config, paintings)
    return method


def option_files(config: Config) -> list[tuple[str, str]]:
    """(role, path) of every option value that names a file: the options flagged as files
    (:attr:`~restyle.config.Option.file`), then the method's own file options. Words (``content``,
    ``none``) and bundled model names are not files."""
    found: list[tuple[str, str]] = []
    for field, opt in options().items():
        value = getattr(config, field)
        if not opt.file or value is None:
            continue
        role = FILE_ROLES.get(field, field.replace("_", " "))
        if isinstance(value, list):
            found += [(f"{role} {i}", os.fspath(v)) for i, v in enumerate(value, 1) if str(v).lower() != "none"]
        elif _path_like(str(value)):
            found.append((role, os.fspath(value)))
    return found + method_for(config).files(config)


def run_inputs(content: Any, styles: Sequence[Any], config: Config) -> list[tuple[str, str]]:
    """The run's input files as (role, path): content, styles, then :func:`option_files`.
    In-memory images have no path and are left out."""
    found = [("content image", content), *((f"style image {i}", s) for i, s in enumerate(styles, 1))]
    return [(role, os.fspath(p)) for role, p in found if isinstance(p, (str, os.PathLike))] + option_files(config)


def _path_like(value: str) -> bool:
    """Whether a file option's value names a file (existing or not: ``-o`` must not overwrite it),
    not a word (``content``, ``noise``) or a bundled model's name (``starry_night``)."""
    return os.path.isfile(value) or bool(os.path.splitext(value)[1]) or os.sep in value


#: How an error message names a file option's value.
FILE_ROLES = {"init": "init image", "masks": "mask", "style_masks": "style mask"}
