"""Specification of what video adds to the engine: a run can start from a given image, and extra
loss terms join the total; the temporal term is a masked mean, the same at every size."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from video_helpers import EXAMPLES

from restyle.config import Config
from restyle.engine import StyleTransfer
from restyle.engine.objective import TemporalConsistency

RUN = dict(size=48, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(EXAMPLES / "chelsea.jpg") as img:
        return img.convert("RGB").resize((48, 32), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def painting() -> Image.Image:
    with Image.open(EXAMPLES / "starry_night.jpg") as img:
        return img.convert("RGB").resize((48, 30), Image.Resampling.LANCZOS)


def test_the_temporal_term_is_a_masked_mean_whatever_the_size():
    for side in (16, 64):
        target = torch.zeros(1, 3, side, side)
        mask = torch.zeros(1, 1, side, side)
        mask[..., : side // 2] = 1  # half the pixels count
        term = TemporalConsistency(target, mask, weight=7.0)
        assert float(term(torch.full((1, 3, side, side), 0.5))) == pytest.approx(0.25 * 0.5)
    # a coarse-to-fine stage's image is smaller than the target: target and mask are resized to it
    assert float(term(torch.full((1, 3, 32, 32), 0.5))) == pytest.approx(0.125)


def test_a_run_can_start_from_a_given_image(photo, painting):
    start = np.zeros((32, 48, 3), np.uint8)
    start[:, :24] = (200, 40, 90)
    start_t = torch.from_numpy(start).permute(2, 0, 1)[None].float() / 255
    result = StyleTransfer(Config(iterations=0, **RUN)).run(photo, [painting], init_image=start_t)
    assert np.array_equal(np.asarray(result.image), start)  # no step taken: the start is the output


def test_an_extra_term_joins_the_total_and_pulls_where_its_mask_says(photo, painting):
    grey = torch.full((1, 3, 32, 48), 0.5)
    mask = torch.zeros(1, 1, 32, 48)
    mask[..., :24] = 1
    term = TemporalConsistency(grey, mask, weight=1e4)
    config = Config(iterations=8, **RUN)
    result = StyleTransfer(config).run(photo, [painting], extra_terms=[term])
    first = result.history[0]  # the content image, before any step
    content = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    others = config.content_weight * first["content"] + config.style_weight * first["style"] + \
        config.tv_weight * first["tv"]
    assert first["total"] == pytest.approx(others + 1e4 * float(term(content)), rel=1e-5)
    out = torch.from_numpy(np.asarray(result.image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    pinned = (out[..., :24] - 0.5).abs().mean()
    free = (out[..., 24:] - 0.5).abs().mean()
    assert pinned < 0.03 < free
    plain = StyleTransfer(config).run(photo, [painting])
    assert set(plain.history[0]) == set(first)  # the same columns: the term is in the total only


def test_frames_after_the_first_run_one_stage_when_they_start_from_the_previous_frame():
    from restyle.video.stylize import VideoOptions, _FrameRunner

    config = Config(size=512, device="cpu")  # coarse to fine by default at this size
    def stages(frames: _FrameRunner, k: int) -> list[int | None]:
        return StyleTransfer(frames.configs[k]).stage_sizes(None)

    linked = _FrameRunner(config, VideoOptions(), [], lambda event: None)
    assert stages(linked, 0) == [256, 512]  # the first frame composes coarse to fine
    assert stages(linked, 1) == [512]  # the others refine the warped frame before
    independent = _FrameRunner(config, VideoOptions(temporal_weight=0), [], lambda event: None)
    assert stages(independent, 1) == [256, 512]  # each frame a still


def _later_frame(width: int, shift: int = 6, coarse_seconds: float = 0.0,
                 **config: Any) -> tuple[list[tuple[int, torch.Tensor, float | None]], np.ndarray, np.ndarray]:
    """Frame 1 of a pan (the view ``shift`` px further right) through a video's frame runner whose method
    records (the longest side it runs at, its start, its time limit) and returns a plain green picture
    (after ``coarse_seconds`` when it runs smaller than the frame); with the painted frame 0 (blue)
    and the new frame's pixels."""
    import time
    from types import SimpleNamespace

    from restyle.video.stylize import VideoOptions, _FrameRunner

    height = width * 2 // 3
    with Image.open(EXAMPLES / "chelsea.jpg") as img:  # large enough for the flow to hold
        wide = np.asarray(img.convert("RGB").resize((width + 6, height), Image.Resampling.LANCZOS),
                          dtype=np.float32) / 255
    previous, current = wide[:, :width], wide[:, shift:shift + width]  # a band appears on the right
    rng = np.random.default_rng(0)
    painted = np.clip(np.array([0.15, 0.25, 0.7]) + 0.08 * rng.standard_normal(previous.shape), 0, 1)
    runs: list[tuple[int, torch.Tensor, float | None]] = []

    def run(frame, styles, config, *, on_event=None, start=None, terms=()):
        runs.append((config.size, start, config.time_limit))
        if config.size < width:
            time.sleep(coarse_seconds)
        side = config.size / max(frame.size)
        size = (round(frame.size[0] * side), round(frame.size[1] * side))
        return SimpleNamespace(image=Image.new("RGB", size, (0, 200, 0)), final_loss=0.0, stopped_early=None)

    frames = _FrameRunner(Config(size=width, device="cpu", **config), VideoOptions(), [], lambda event: None)
    frames.method = SimpleNamespace(run=run)
    frames(1, Image.fromarray((current * 255).round().astype(np.uint8)), (previous, painted.astype(np.float32)))
    return runs, painted.astype(np.float32), current


def _mean(x: torch.Tensor, columns: slice) -> np.ndarray:
    return x[0, :, :, columns].mean(dim=(1, 2)).numpy()


def test_what_a_pan_reveals_starts_in_the_colours_of_the_painted_frame_before():
    """Under the automatic stop, the band the flow cannot carry over starts from the new frame
    recoloured to the previous output's colour statistics, not in the photo's."""
    runs, painted, current = _later_frame(64)
    assert [size for size, *_ in runs] == [64]  # one stage: nothing coarser to paint at
    start = runs[0][1]
    assert np.abs(_mean(start, slice(8, 50)) - painted.mean((0, 1))).max() < 0.05  # carried over, warped
    assert np.abs(_mean(start, slice(-5, None)) - painted.mean((0, 1))).max() < 0.15  # blue, like the painted frame
    assert np.abs(_mean(start, slice(-5, None)) - current[:, -5:].mean((0, 1))).max() > 0.25  # not the cat's browns


def test_with_n_what_a_pan_reveals_starts_from_the_new_frame_as_it_always_did():
    runs, _, current = _later_frame(64, iterations=5)
    assert np.abs(_mean(runs[0][1], slice(-5, None)) - current[:, -5:].mean((0, 1))).max() < 0.02


def test_a_coarse_to_fine_video_paints_what_a_pan_reveals_at_the_coarse_size_first():
    runs, painted, _ = _later_frame(512)
    assert [size for size, *_ in runs] == [256, 512]
    final = runs[1][1]
    assert np.abs(_mean(final, slice(20, 480)) - painted.mean((0, 1))).max() < 0.05  # carried over, as before
    band = _mean(final, slice(-5, None))
    assert band[1] > 0.6 and band[0] < 0.3  # the coarse pass's (green) picture, with the frame's detail


def test_n_and_a_still_camera_paint_nothing_coarse_first():
    assert [size for size, *_ in _later_frame(512, iterations=5)[0]] == [512]
    assert [size for size, *_ in _later_frame(512, shift=0)[0]] == [512]


def test_a_time_limit_holds_for_a_whole_frame_its_coarse_pass_included():
    runs, _, _ = _later_frame(512, coarse_seconds=0.3, time_limit=8.0)
    (coarse, _, coarse_limit), (size, _, limit) = runs
    assert (coarse, size) == (256, 512)
    assert coarse_limit == 4.0  # the coarse pass: half the frame's limit at most
    assert limit is not None and 7.0 < limit <= 7.7  # the frame itself: what the coarse pass left

