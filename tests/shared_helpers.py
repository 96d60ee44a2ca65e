"""Helpers the tests share, in a module with a unique name (``from conftest import`` finds
whichever conftest.py was imported first when several directories have one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "restyle" / "examples"


def example(name: str, longest: int, path: Path) -> Path:
    """The bundled example ``name`` scaled to ``longest`` pixels (longest side), saved at ``path``."""
    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB")
        img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        img.save(path, quality=95) if path.suffix == ".jpg" else img.save(path)
    return path


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """``restyle ARGV...`` in this process: (exit code, stdout, stderr)."""
    from restyle.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
