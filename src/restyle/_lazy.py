"""Names a package exports but imports on first use, so importing the package stays cheap
(``restyle --help`` and ``import restyle`` load no torch, FastAPI, Ray, PyAV or OpenCV)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str], *, keep: bool = False) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each public name to the module
    that defines it, imported on first use. With ``keep`` the value is then kept in the package's
    namespace; without it every access reads the defining module again, so a test that
    monkeypatches the defining module is seen through the package too."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            if keep:
                setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
