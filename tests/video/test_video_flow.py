"""Specification of the optical flow and what is built on it: the flow of a known shift is that
shift, warping with it reproduces the next frame, the occlusion mask marks what a pan or a
moving object uncovers (and little else), and the warping error separates steady from flickering."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from video_helpers import EXAMPLES

from restyle.video import flow


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A textured 200x133 photo, float RGB in [0, 1]."""
    with Image.open(EXAMPLES / "chelsea.jpg") as img:
        return np.asarray(img.convert("RGB").resize((200, 133), Image.Resampling.LANCZOS), dtype=np.float32) / 255


def shifted(photo: np.ndarray, dx: int, dy: int, w: int = 150, h: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(previous, current): a window of the photo, then the same window with its content moved by
    (dx, dy) pixels (the camera moved the other way)."""
    x0, y0 = 20, 15
    return photo[y0:y0 + h, x0:x0 + w], photo[y0 - dy:y0 - dy + h, x0 - dx:x0 - dx + w]


def test_the_flow_of_a_known_shift_is_that_shift(photo):
    previous, current = shifted(photo, 5, 3)
    link = flow.pair(flow.FlowEstimator(), previous, current)
    inner = link.backward[10:-10, 10:-10]  # frame t -> t-1: where each pixel came from
    assert np.median(inner[..., 0]) == pytest.approx(-5, abs=0.1)
    assert np.median(inner[..., 1]) == pytest.approx(-3, abs=0.1)
    assert np.mean(np.abs(inner - (-5, -3)) < 0.5) > 0.9


def test_warping_the_previous_frame_reproduces_the_current_one(photo):
    previous, current = shifted(photo, 4, -2)
    link = flow.pair(flow.FlowEstimator(), previous, current)
    warped = link.warp(previous)
    reliable = link.masks.reliable
    assert reliable.mean() > 0.85
    assert np.abs(warped - current)[reliable].mean() < 0.01  # 8-bit levels: under 3
    assert np.abs(previous - current)[reliable].mean() > 0.05  # and the frames did differ


def test_warp_moves_an_image_by_the_flow():
    image = np.zeros((20, 30, 3), np.float32)
    image[5:8, 10:13] = 1.0
    backward = np.zeros((20, 30, 2), np.float32)
    backward[..., 0], backward[..., 1] = -4.0, 2.0  # pixel p of frame t comes from p + (-4, 2)
    warped = flow.warp(image, backward)
    assert np.array_equal(warped[3:6, 14:17], np.ones((3, 3, 3), np.float32))
    assert warped.sum() == pytest.approx(9 * 3)


def test_the_occlusion_mask_marks_the_band_a_pan_uncovers(photo):
    previous, current = shifted(photo, 6, 0)  # content moves right: a 6-px band appears on the left
    masks = flow.pair(flow.FlowEstimator(), previous, current).masks
    assert masks.disoccluded[:, :6].mean() > 0.95
    assert masks.disoccluded[:, 9:].mean() < 0.03
    assert not masks.reliable[:, :6].any()


def test_the_occlusion_mask_marks_what_a_moving_square_uncovers(photo):
    background = photo[10:110, 20:170]
    square = photo[0:30, 0:30][::-1, ::-1]  # other texture
    previous, current = background.copy(), background.copy()
    previous[35:65, 40:70] = square
    current[35:65, 48:78] = square  # moved 8 px right: background at x 40-47 is uncovered
    masks = flow.pair(flow.FlowEstimator(), previous, current).masks
    uncovered = masks.disoccluded[37:63, 41:47]
    assert uncovered.mean() > 0.6
    assert masks.disoccluded[:, 100:].mean() < 0.02  # far from the square: nothing
    assert masks.disoccluded[:25].mean() < 0.02
    assert (~masks.reliable[30:70, 35:85]).mean() > (~masks.reliable[:, 100:]).mean() + 0.2


def test_the_warping_error_is_low_for_steady_frames_and_high_for_flicker(photo):
    previous, current = shifted(photo, 3, 1)
    link = flow.pair(flow.FlowEstimator(), previous, current)
    steady = flow.warping_error(previous, current, link)
    rng = np.random.default_rng(0)
    flicker = np.clip(current + rng.normal(0, 0.1, current.shape).astype(np.float32), 0, 1)
    assert steady < 1e-3
    assert flow.warping_error(previous, flicker, link) > 5e-3 + steady


def test_a_frame_with_a_display_rotation_is_turned_upright():
    from restyle.video.source import upright

    class PhoneFrame:  # decoded portrait video: stored landscape, display matrix says turn a quarter clockwise
        rotation = -90

        def to_image(self):
            img = Image.new("RGB", (4, 2))
            img.putpixel((0, 0), (255, 0, 0))  # top-left is red in storage
            return img

    img = upright(PhoneFrame())
    assert img.size == (2, 4)
    assert img.getpixel((1, 0)) == (255, 0, 0)  # a quarter turn clockwise puts it top-right
