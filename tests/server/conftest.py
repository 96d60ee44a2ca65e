"""Fixtures of the server tests (the helpers are in server_helpers.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install 'restyle[server]')")

from server_helpers import png_bytes  # noqa: E402


@pytest.fixture(scope="session")
def photo() -> bytes:
    """A 40 px photo (Chelsea the cat) as PNG bytes."""
    return png_bytes("chelsea.jpg")


@pytest.fixture(scope="session")
def painting() -> bytes:
    """A 40 px painting (The Starry Night) as PNG bytes."""
    return png_bytes("starry_night.jpg")
