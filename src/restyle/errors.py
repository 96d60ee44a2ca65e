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
    """The output path cannot be written; ``errno`` is the system's error number when it gave one
    (a server tells a full disk apart by it)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def out_of_memory(err: BaseException, *, flags: bool = True) -> str | None:
    """The one line that tells the user ``err`` ran out of memory, or None when it did not: a ``MemoryError``
    (RAM) or torch's ``OutOfMemoryError`` (GPU; known by its name, so torch need not be imported). ``flags``:
    the options as the command line names them (``--size``); False: as the HTTP API names them, where the
    server, not the client, picks the device."""
    if isinstance(err, MemoryError):
        return memory_message(flags=flags)
    if type(err).__name__ == "OutOfMemoryError":
        return memory_message(gpu=True, flags=flags)
    return None


def memory_message(*, gpu: bool = False, flags: bool = True, also: tuple[str, ...] = ()) -> str:
    """The one wording of "out of memory" and what to try: ``gpu`` when the GPU's memory ran out, ``flags`` as in
    :func:`out_of_memory`, ``also``: further advice where the caller knows more (``"fewer tasks per node"``)."""
    size = "a smaller --size" if flags else "a smaller size"
    advice = [size, "--precision bf16" if flags else "precision bf16"] if gpu else [size]
    if gpu and flags:
        advice.append("--device cpu")
    advice.extend(also)
    tried = advice[0] if len(advice) == 1 else (" or ".join(advice) if len(advice) == 2
                                                else ", ".join(advice[:-1]) + ", or " + advice[-1])
    return f"out of {'GPU ' if gpu else ''}memory; try {tried}"


#: The signal a worker dies of when the kernel's OOM killer ends it (SIGKILL; ``signal`` lacks it on Windows).
SIGKILL = 9


def killed_hint(signum: int | None) -> str:
    """What a worker that died of ``signum`` most likely ran into, for its death's one line: "out of memory?"
    after SIGKILL (most often the kernel's OOM killer), else nothing."""
    return "out of memory?" if signum == SIGKILL else ""


def notice(message: str) -> None:
    """Tell the user something they should know that is not an error (e.g. 'used first GIF frame')."""
    log.warning(message)
