"""Shared fixtures: tiny content/style images made from the bundled examples, and a fast
torch setup for machines whose few cores are shared."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from shared_helpers import example

# On a machine whose 2 cores are shared with other jobs, torch's intra-op threads spin against
# each other and a tiny VGG pass takes ~10x longer than on one thread.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny images (64 px longest side): ``content`` (a cat photo), ``style`` (The Starry Night),
    ``style2`` (The Scream). Shared by the session: tests must not modify them."""
    d = tmp_path_factory.mktemp("inputs")
    return {
        "content": example("chelsea.jpg", 64, d / "content.jpg"),
        "style": example("starry_night.jpg", 64, d / "style.jpg"),
        "style2": example("the_scream.jpg", 64, d / "style2.jpg"),
    }


@pytest.fixture
def content(inputs: dict[str, Path]) -> Path:
    return inputs["content"]


@pytest.fixture
def style(inputs: dict[str, Path]) -> Path:
    return inputs["style"]


@pytest.fixture
def style2(inputs: dict[str, Path]) -> Path:
    return inputs["style2"]


@pytest.fixture
def no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without RESTYLE_DEBUG, as a user runs restyle: errors are one line, no traceback."""
    monkeypatch.delenv("RESTYLE_DEBUG", raising=False)


@pytest.fixture
def no_vgg16_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty torch hub and Keras caches: no VGG16 weights can be found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAS_HOME", raising=False)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A directory without write permission. Root ignores mode bits, so there os.access is made
    to answer from the mode bits, as it does for everyone else."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path).resolve() == directory.resolve() and mode & os.W_OK:
                return bool(os.stat(path).st_mode & stat.S_IWUSR)
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield directory
    directory.chmod(0o755)
