"""Finish now: a person who finds the picture finished ends the run from its progress events
(``FinishNow`` raised by the event handler) and gets that picture, at the output size, with a
record that says so; the steps before it are the run's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restyle.config import Config
from restyle.engine import StyleTransfer
from restyle.engine.events import Finished, FinishNow, Progress
from restyle.io import images

pytestmark = pytest.mark.numeric

FP32 = dict(device="cpu", precision="fp32", seed=0)


def _finish_at(iteration: int, seen: list):
    def on_event(event) -> None:
        seen.append(event)
        if isinstance(event, Progress) and event.iteration == iteration:
            raise FinishNow

    return on_event


def test_a_run_finished_on_request_delivers_the_image_of_the_row_it_was_asked_at(content: Path, style: Path):
    seen: list = []
    rows: list = []
    result = StyleTransfer(Config(**FP32, size=64, iterations=40)).run(
        content, [style], on_event=_finish_at(6, seen), on_iteration=lambda row, image: rows.append(row))
    shown = next(e for e in seen if isinstance(e, Progress) and e.iteration == 6)
    assert [r["iteration"] for r in result.history] == list(range(7))  # no row after the one shown
    assert rows == result.history  # the row handler saw every row, the one asked at included
    assert np.array_equal(np.asarray(result.image), np.asarray(images.to_image(shown.image.float().cpu())))
    assert result.stopped_early is None  # not a failure
    assert result.stop_reason == "finished on request at iteration 6"
    finished = seen[-1]
    assert isinstance(finished, Finished) and finished.reason == result.stop_reason and finished.iterations == 6


def test_the_steps_before_a_request_are_those_of_a_run_left_alone(content: Path, style: Path):
    config = Config(**FP32, size=64, iterations=12)
    whole = StyleTransfer(config).run(content, [style])
    cut = StyleTransfer(config).run(content, [style], on_event=_finish_at(5, []))
    assert [r["total"] for r in cut.history] == [r["total"] for r in whole.history][:6]


def test_a_request_in_a_coarse_stage_delivers_the_output_size_and_says_it_was_upsampled(content: Path, style: Path):
    seen: list = []
    config = Config(**FP32, size=128, scales=(64, 128), iterations=10)
    result = StyleTransfer(config).run(content, [style], on_event=_finish_at(3, seen))
    assert max(result.image.size) == 128
    assert {r["scale"] for r in result.history} == {64}
    assert result.stop_reason == "finished on request at iteration 3 (in the 64 px stage; its image upsampled to 128 px)"


def test_finish_now_raised_outside_a_progress_event_is_an_ordinary_exception(content: Path, style: Path):
    def on_event(event) -> None:
        if not isinstance(event, Progress):
            raise FinishNow

    with pytest.raises(FinishNow):
        StyleTransfer(Config(**FP32, size=64, iterations=3)).run(content, [style], on_event=on_event)


def test_an_automatic_run_can_be_finished_before_its_rule_would_stop_it(content: Path, style: Path):
    result = StyleTransfer(Config(**FP32, size=64)).run(content, [style], on_event=_finish_at(2, []))
    assert len(result.history) == 3 and result.stop_reason.startswith("finished on request")
    assert torch.isfinite(torch.tensor([r["total"] for r in result.history])).all()


def test_the_words_given_with_the_request_end_the_stop_reason(content: Path, style: Path):
    def on_event(event) -> None:
        if isinstance(event, Progress) and event.iteration == 2:
            raise FinishNow("looks done")

    result = StyleTransfer(Config(**FP32, size=64, iterations=10)).run(content, [style], on_event=on_event)
    assert result.stop_reason == "finished on request at iteration 2: looks done"
