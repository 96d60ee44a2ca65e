"""Tiny clips made by the tests: a slow pan and zoom over a bundled photo (H.264 with an AAC tone),
and the same frames as a GIF and as a folder of numbered PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")

from video_helpers import EXAMPLES, FPS, FRAMES, SIZE  # noqa: E402

from restyle.video.demo import pan_zoom_clip, pan_zoom_frames  # noqa: E402


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 frames of 96x54 at 12 fps, H.264, with 0.83 s of a 440 Hz tone as AAC audio."""
    return pan_zoom_clip(EXAMPLES / "shipwreck.jpg", tmp_path_factory.mktemp("clip") / "clip.mp4",
                         frames=FRAMES, size=SIZE, fps=FPS)


@pytest.fixture(scope="session")
def gif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clip's frames as an animated GIF (100 ms per frame)."""
    frames = list(pan_zoom_frames(EXAMPLES / "shipwreck.jpg", FRAMES, SIZE))
    path = tmp_path_factory.mktemp("gif") / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


@pytest.fixture(scope="session")
def frame_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clip's frames as 1.png ... 10.png (numbers not zero-padded: sorted as numbers)."""
    folder = tmp_path_factory.mktemp("frames") / "frames"
    folder.mkdir()
    for k, frame in enumerate(pan_zoom_frames(EXAMPLES / "shipwreck.jpg", FRAMES, SIZE)):
        frame.save(folder / f"{k + 1}.png")
    return folder


@pytest.fixture(scope="session")
def painting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Starry Night at 64 px."""
    from PIL import Image

    path = tmp_path_factory.mktemp("style") / "starry.jpg"
    with Image.open(EXAMPLES / "starry_night.jpg") as img:
        img = img.convert("RGB")
        img.thumbnail((64, 64))
        img.save(path, quality=95)
    return path
