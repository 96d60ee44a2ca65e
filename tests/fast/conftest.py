"""Fixtures for fast models: tiny generated photos and a tiny model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared_helpers import tiny_fast_model


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of six generated 48-px 'photos' (smooth colour gradients with a bright square),
    one of them in a subfolder, plus a file that is not an image."""
    d = tmp_path_factory.mktemp("photos")
    (d / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        y, x = np.mgrid[0:48, 0:48] / 47.0
        c = rng.uniform(0.2, 0.8, size=(3, 2))
        img = np.stack([c[k, 0] * x + c[k, 1] * y for k in range(3)], axis=-1)
        a, b = rng.integers(4, 30, size=2)
        img[a:a + 14, b:b + 14] = rng.uniform(0.6, 1.0, size=3)
        folder = d / "sub" if i == 5 else d
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    (d / "notes.jpg").write_text("not an image")
    return d


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A tiny random two-style model file (styles style1, style2)."""
    return tiny_fast_model(tmp_path / "tiny.pt")
