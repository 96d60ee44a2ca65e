"""Errors that reach the user as one line and exit code 2 (never a traceback)."""

from __future__ import annotations

import logging

log = logging.getLogger("restyle")


class RestyleError(Exception):
    """A problem with the user's input: the CLI prints ``restyle: error: <message>`` and exits 2."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep the message to one line whatever the cause said.
        super().__init__(" ".join(str(message).split()))


class InputImageError(RestyleError):
    """An input image is missing, unreadable or unusable."""


class WeightsError(RestyleError):
    """A weights file is missing, truncated, of the wrong format or the wrong architecture."""


class ConfigError(RestyleError):
    """Options that do not fit together (unknown layer, counts that do not match, ...)."""


class OutputError(RestyleError):
    """The output path cannot be written."""


def notice(message: str) -> None:
    """Tell the user something they should know that is not an error (e.g. 'used first GIF frame')."""
    log.warning(message)
