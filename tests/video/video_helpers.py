"""Constants the video tests share (a module of its own: ``from conftest import`` would find
whichever conftest.py was imported last)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "restyle" / "examples"
#: The test clip: frames, (width, height) and frame rate.
FRAMES, SIZE, FPS = 10, (96, 54), 12
#: Each frame's run: tiny and quick (1 L-BFGS step), for the tests of the plumbing.
FAST = ["--size", "64", "-n", "1", "--first-iterations", "1", "--precision", "fp32", "--device", "cpu", "-q"]
