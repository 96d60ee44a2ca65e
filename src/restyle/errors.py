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


def out_of_memory(err: BaseException, *, flags: bool = True) -> str | None:
    """The one line that tells the user ``err`` ran out of memory, or None when it did not: a ``MemoryError``
    (RAM) or torch's ``OutOfMemoryError`` (GPU; known by its name, so torch need not be imported). ``flags``:
    the options as the command line names them (``--size``); False: as the HTTP API names them, where the
    server, not the client, picks the device."""
    if isinstance(err, MemoryError):
        return f"out of memory; try a smaller {'--size' if flags else 'size'}"
    if type(err).__name__ == "OutOfMemoryError":
        advice = "a smaller --size, --precision bf16, or --device cpu" if flags else "a smaller size or precision bf16"
        return f"out of GPU memory; try {advice}"
    return None


def notice(message: str) -> None:
    """Tell the user something they should know that is not an error (e.g. 'used first GIF frame')."""
    log.warning(message)
