"""Run options on the command line, shared by every command that runs style transfer.

They are generated from the :class:`restyle.config.Config` fields' metadata (help, flags, group,
metavar, choices); each option's text is parsed by :func:`restyle.config.parse_field`, whose
one-line :class:`~restyle.errors.ConfigError` reaches the user as ``restyle: error: ...``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Mapping
from typing import Any

from restyle import config
from restyle.config import parse_field


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def field_type(name: str, item: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for Config field ``name``: :func:`parse_field` (``item``: one item of a list)."""

    def parse(text: str) -> Any:
        return parse_field(name, text, item=item)

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def field_help(name: str, extra: str = "") -> str:
    """The field's help with its default, escaped for argparse's %-formatting."""
    opt = config.options()[name]
    shown = config.shown_default(name)
    text = opt.help + (f" (default {shown})" if shown else "") + extra
    return text.replace("%", "%%")


def add_run_options(parser: argparse.ArgumentParser, exclude: Collection[str] = (),
                    preset_choices: Mapping[str, str] | None = None, methods: bool = True) -> None:
    """Add a flag for every run option of :class:`~restyle.config.Config` (all fields but the internal
    ones and those in ``exclude``), in the fields' help groups, plus ``--preset``; ``preset_choices``
    (name -> description) are further values ``--preset`` takes (e.g. the study presets).

    Options the user does not give are absent from the parsed namespace (see :func:`run_options`),
    so ``--size none`` (None: keep the content's size) differs from no ``--size``. ``methods``: also
    the flags the methods declare (``--method`` itself is a Config field)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for group_name in config.GROUPS:
        for name, opt in sorted(config.options().items(), key=lambda item: item[0] != "preset"):  # --preset first
            if opt.group != group_name or name in exclude:
                continue
            if group_name not in groups:
                groups[group_name] = parser.add_argument_group(group_name)
            g = groups[group_name]
            if name == "preset":
                _add_preset(g, preset_choices or {})
            elif opt.internal is None:
                _add_field(g, name, opt)
    if methods:
        _add_method_options(parser)


#: Where the parsed namespace keeps a method's own option (``--transform`` -> ``method.transform``).
METHOD_DEST = "method."


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    """A flag for each option an installed method declares (``Config.method_options``)."""
    from restyle import api

    table = api.method_options()
    if not table:
        return
    g = parser.add_argument_group("method options (--method NAME)")
    for name, (method, opt) in table.items():
        g.add_argument(opt.flag, dest=METHOD_DEST + name, default=argparse.SUPPRESS, type=opt.type,
                       metavar=opt.metavar, help=f"--method {method.name}: {opt.help}".replace("%", "%%"))


def _add_field(g: argparse._ArgumentGroup, name: str, opt: config.Option) -> None:
    common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
    if opt.shortcut is not None:
        flag, value, text = opt.shortcut
        g.add_argument(flag, action="store_const", const=value, help=text.replace("%", "%%"), **common)
    if config.value_kind(name) == "bool":
        g.add_argument(*opt.flags, action=argparse.BooleanOptionalAction, help=field_help(name), **common)
        return
    metavar = opt.metavar
    if metavar is None and opt.choices is not None:  # argparse's own choices check would refuse "none"
        metavar = "{" + ",".join(opt.choices) + "}"
    g.add_argument(*opt.flags, type=field_type(name, item=opt.repeat), action="append" if opt.repeat else "store",
                   metavar=metavar, help=field_help(name), **common)


def _add_preset(g: argparse._ArgumentGroup, extra: Mapping[str, str]) -> None:
    opt = config.options()["preset"]
    more = "".join(f"; or a study preset, {name}: {description}" for name, description in extra.items())
    g.add_argument(*opt.flags, choices=[*(opt.choices or ()), *extra], help=field_help("preset", more))


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields the user gave on the command line (None where they typed ``none``)."""
    given = {name: getattr(args, name) for name in config.run_fields() if hasattr(args, name)}
    own = {k[len(METHOD_DEST):]: v for k, v in vars(args).items() if k.startswith(METHOD_DEST)}
    if own:
        given["method_options"] = own
    return given
