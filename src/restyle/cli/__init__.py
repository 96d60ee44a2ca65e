"""Command line: a thin layer over the Python API.

    restyle run CONTENT STYLE [STYLE ...] -o OUT.png [options]
    restyle run --from-image OUT.png -o AGAIN.png
    restyle export MODEL OUT.onnx [--int8]
    restyle layers
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from restyle.errors import RestyleError, out_of_memory

#: One module per subcommand, each exposing ``add_parser(subparsers)``. None may import torch at
#: module level: ``restyle --help`` builds every parser (0.07 s without torch, 1.3 s with).
COMMANDS = ("run", "train", "export", "study", "batch", "video", "score", "layers", "serve")


def build_parser() -> argparse.ArgumentParser:
    from restyle import __version__

    parser = argparse.ArgumentParser(
        prog="restyle", description="Neural style transfer (Gatys et al. 2016), offline, on CPU and GPU.")
    parser.add_argument("--version", action="version", version=f"restyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"restyle.cli.{name}").add_parser(sub)
    return parser


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"restyle: note: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    log = logging.getLogger("restyle")
    saved = log.handlers[:], log.propagate
    log.handlers[:] = [handler]
    log.propagate = False
    try:
        return _main(argv)
    finally:  # called in-process (tests, scripts): leave logging as it was, not tied to this stderr
        log.handlers[:], log.propagate = saved


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # an option's bad text: a ConfigError from restyle.config.parse_field
        return args.handler(args)
    except RestyleError as err:
        print(f"restyle: error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # e.g. `restyle layers | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("restyle: interrupted; no output written", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line unless the user asks for the traceback; memory: what to try
        memory = out_of_memory(err)
        if memory is not None:
            print(f"restyle: error: {memory}", file=sys.stderr)
            return 2
        if os.environ.get("RESTYLE_DEBUG"):
            raise
        print(f"restyle: internal error: {type(err).__name__}: {err} (set RESTYLE_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
