"""The typed progress events of a run (Started, a Progress per history row, Finished) and the
backend flags a run sets for its duration only.

Runs use the real embedded VGG19 on tiny images for a few iterations, on the CPU.
"""

from __future__ import annotations

import json
import math
import pickle
from types import SimpleNamespace

import pytest
import torch

from restyle.config import Config
from restyle.engine import StyleTransfer
from restyle.engine.backend import backend_flags
from restyle.engine.events import Event, Finished, Progress, Started, as_dict
from restyle.io.history import LOSS_FIELDS

CPU = dict(device="cpu", precision="fp32")


def run_with_events(config: Config, content, styles) -> tuple[list[Event], object]:
    events: list[Event] = []
    result = StyleTransfer(config).run(content, styles, on_event=events.append)
    return events, result


@pytest.mark.parametrize(
    "options, stages",
    [
        pytest.param(dict(size=32, iterations=3), (32,), id="one-stage"),
        pytest.param(dict(scales=[32, 48], iterations=2, optimizer="adam", lr=0.05), (32, 48), id="coarse-to-fine"),
    ],
)
def test_a_run_emits_started_one_progress_per_history_row_then_finished(content, style, options, stages):
    events, result = run_with_events(Config(**options, **CPU), content, [style])
    history = result.history
    started, *progress, finished = events

    assert isinstance(started, Started) and isinstance(finished, Finished)
    assert all(isinstance(e, Progress) for e in progress)
    assert len(progress) == len(history) == started.total
    assert started.stages == stages and started.model == result.config.model
    assert (started.device, started.precision) == ("cpu", "fp32")
    for event, row in zip(progress, history):
        assert event.total == len(history)
        assert event.iteration == row["iteration"] and event.scale == row["scale"]
        assert event.losses == {k: row[k] for k in LOSS_FIELDS}
        assert event.seconds == row["seconds"]
        assert event.image is not None and event.image.shape[-2:] != (0, 0)
        assert max(event.image.shape[-2:]) == event.scale
    assert [e.iteration for e in progress] == list(range(started.total))
    assert progress[-1].fraction == 1.0
    assert finished.iterations == len(history) - 1
    assert finished.final_loss == result.final_loss
    assert finished.stopped_early is None
    assert finished.seconds >= progress[-1].seconds


def test_events_pickle_and_serialise_with_as_dict(content, style):
    events, _ = run_with_events(Config(size=32, iterations=2, **CPU), content, [style])
    assert [type(e) for e in events] == [Started, Progress, Progress, Progress, Finished]
    for event in events:
        again = pickle.loads(pickle.dumps(event))
        assert type(again) is type(event)
        if isinstance(event, Progress):
            assert event.image is not None and event.image.device.type == "cpu"
            assert torch.equal(again.image, event.image)
            assert again.losses == event.losses and again.iteration == event.iteration
        else:
            assert again == event

        d = as_dict(event)
        assert d["type"] == type(event).__name__.lower()
        assert "image" not in d
        assert json.loads(json.dumps(d)) == d  # JSON-ready: lists, numbers, strings, None
    started = as_dict(events[0])
    assert started["stages"] == [32] and isinstance(started["notes"], list)
    first, later = as_dict(events[1]), as_dict(events[2])
    assert first["eta"] is None and later["eta"] is not None and later["eta"] >= 0


def test_a_stopped_run_still_ends_with_finished_saying_why(content, style, monkeypatch):
    real = StyleTransfer.losses
    calls = {"n": 0}

    def losses(self, x):  # NaN from the third evaluation on: rows 0 and 1 are finite
        calls["n"] += 1
        parts = real(self, x)
        return tuple(p * float("nan") for p in parts) if calls["n"] > 2 else parts

    monkeypatch.setattr(StyleTransfer, "losses", losses)
    events, result = run_with_events(Config(size=32, iterations=5, optimizer="adam", **CPU), content, [style])
    started, *progress, finished = events
    assert isinstance(finished, Finished)
    assert finished.stopped_early == result.stopped_early and "non-finite" in finished.stopped_early
    assert [e.iteration for e in progress] == [0, 1] == [r["iteration"] for r in result.history]
    assert all(math.isfinite(v) for e in progress for v in e.losses.values())
    assert started.total == 6 and finished.iterations == 1


# ---- backend flags ---------------------------------------------------------------------------

FLAGS = (
    (torch.backends.cudnn, "benchmark"),
    (torch.backends.cudnn, "allow_tf32"),
    (torch.backends.cuda.matmul, "allow_tf32"),
)


def flags() -> tuple[bool, ...]:
    return tuple(bool(getattr(owner, name)) for owner, name in FLAGS)


@pytest.fixture
def saved_flags():
    """Restore the process's flags whatever a test does to them."""
    saved = flags()
    yield saved
    for (owner, name), value in zip(FLAGS, saved):
        setattr(owner, name, value)


@pytest.mark.parametrize("precision, tf32", [("fp32", False), ("tf32", True), ("bf16", False)])
def test_backend_flags_are_set_on_cuda_for_the_block_only(saved_flags, precision, tf32):
    cuda = SimpleNamespace(type="cuda")  # the flags are process settings: no GPU needed to check them
    before = (False, not tf32, not tf32)
    for (owner, name), value in zip(FLAGS, before):
        setattr(owner, name, value)
    with backend_flags(cuda, precision):  # type: ignore[arg-type]
        assert flags() == (True, tf32, tf32)  # cuDNN benchmark on; TF32 only when asked for
    assert flags() == before


def test_backend_flags_are_restored_when_the_run_fails(saved_flags):
    cuda = SimpleNamespace(type="cuda")
    with pytest.raises(RuntimeError, match="boom"), backend_flags(cuda, "tf32"):  # type: ignore[arg-type]
        raise RuntimeError("boom")
    assert flags() == saved_flags


def test_backend_flags_are_a_no_op_on_the_cpu(saved_flags):
    with backend_flags(torch.device("cpu"), "tf32"):
        assert flags() == saved_flags


def test_backend_flags_are_restored_after_a_run(saved_flags, content, style, monkeypatch):
    entered = []
    real = backend_flags

    def spy(device, precision):
        entered.append((device.type, precision))
        return real(device, precision)

    monkeypatch.setattr("restyle.engine.transfer.backend_flags", spy)
    StyleTransfer(Config(size=32, iterations=1, **CPU)).run(content, [style])
    assert entered == [("cpu", "fp32")]  # the run went through backend_flags
    assert flags() == saved_flags
