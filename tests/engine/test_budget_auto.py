"""``--max-memory auto``, the default: a run is sized to the memory the machine has available. A
stage whose estimate exceeds it is tiled and the run finishes; a run no tile can fit is refused
before its first event, with one line naming the stage, the memory it needs and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from restyle.config import Config
from restyle.engine import StyleTransfer, budget
from restyle.errors import ConfigError

FP32 = dict(device="cpu", precision="fp32")
SHALLOW = dict(content_layers="block2_conv2", style_layers="block1_conv1,block2_conv1")


def test_auto_is_the_default_and_reads_the_available_memory(monkeypatch: pytest.MonkeyPatch):
    assert Config().max_memory == "auto" and Config.from_text({"max_memory": "none"}).max_memory is None
    import torch

    assert 0 < budget.available_bytes(torch.device("cpu")) < 2**50  # this machine's, read from the kernel
    monkeypatch.setattr(budget, "available_bytes", lambda device: 10 * 2**30)
    assert budget.memory_budget(Config(), torch.device("cpu")) == pytest.approx(9 * 2**30)
    assert budget.memory_budget(Config(max_memory=None), torch.device("cpu")) is None


def test_a_run_over_the_available_memory_is_tiled_and_finishes(monkeypatch: pytest.MonkeyPatch, content: Path,
                                                               style: Path):
    probe = StyleTransfer(Config(size=96, iterations=1, **SHALLOW, **FP32))
    probe.run(content, [style])
    layers = probe.objective.layers if probe.objective is not None else []
    size = (64, 96)
    untiled = budget.estimate_bytes(probe.config, probe.extractor, layers, size, pairs=budget.BUDGET_MIN_PAIRS)
    tiled = budget.estimate_bytes(probe.config, probe.extractor, layers, size, 48, budget.BUDGET_MIN_PAIRS)
    assert tiled < untiled
    monkeypatch.setattr(budget, "MIN_AUTO_TILE", 32)  # tiles this small image can be cut into
    available = (tiled + untiled) / 2 / (1 - budget.AUTO_MARGIN)
    monkeypatch.setattr(budget, "available_bytes", lambda device: available)
    result = StyleTransfer(Config(size=96, iterations=3, **SHALLOW, **FP32)).run(content, [style])
    assert any("tiled" in note and "available (--max-memory auto)" in note for note in result.notes)
    assert len(result.history) == 4 and result.image.size[0] == 96


def test_a_run_no_tile_can_fit_is_refused_before_any_event(monkeypatch: pytest.MonkeyPatch, content: Path,
                                                           style: Path):
    monkeypatch.setattr(budget, "available_bytes", lambda device: 0.1 * 2**30)
    events: list = []
    with pytest.raises(ConfigError) as err:
        StyleTransfer(Config(size=2000, **SHALLOW, **FP32)).run(content, [style], on_event=events.append)
    message = str(err.value)
    assert events == [] and "\n" not in message
    assert "GB this machine has available (--max-memory auto) is too little for the" in message
    assert "lower --size" in message and "--max-memory GB" in message
