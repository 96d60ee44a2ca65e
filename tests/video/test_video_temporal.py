"""Specification of the temporal side: an interrupted run continues from its last finished frame
(and makes the frames an uninterrupted run makes), a changed option starts over, and on a pan
the default temporal weight cuts the warping error of independent frames by at least 40%."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from video_helpers import FAST, FRAMES

from restyle.video import stylize
from shared_helpers import run_cli as run


def frames_of(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))]


def test_an_interrupted_run_continues_from_its_last_finished_frame(clip, painting, tmp_path, capsys, monkeypatch):
    options = ["--size", "64", "-n", "2", "--first-iterations", "3", "--precision", "fp32", "--device", "cpu"]
    code, _, err = run(capsys, "video", clip, painting, "-o", f"{tmp_path / 'reference'}/", *options, "-q")
    assert code == 0, err

    real = stylize._FrameRunner.__call__
    made: list[int] = []
    stop = {"at": 4}

    def stop_at_frame_4(self, pos, frame, previous):
        if pos == stop["at"]:
            stop["at"] = -1  # once
            raise KeyboardInterrupt
        made.append(pos)
        return real(self, pos, frame, previous)

    monkeypatch.setattr(stylize._FrameRunner, "__call__", stop_at_frame_4)
    out, work = tmp_path / "out.mp4", tmp_path / "out.mp4.work"
    code, _, err = run(capsys, "video", clip, painting, "-o", out, *options)
    assert code == 130 and "4 finished frame(s) kept in" in err and "run the same command to continue" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4.work", "reference"]
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("frame_*.png")}
    assert len(kept) == 4

    code, _, err = run(capsys, "video", clip, painting, "-o", out, *options, "--keep-frames")
    assert code == 0, err
    assert made == list(range(FRAMES))  # frames 1-4, interrupted, then 5.. (1-4 not made again)
    assert f"{FRAMES} frames (4 finished before)" in err
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("frame_*.png") if p.name in kept} == kept
    resumed, reference = frames_of(work), frames_of(tmp_path / "reference")
    assert len(resumed) == FRAMES and all(np.array_equal(a, b) for a, b in zip(resumed, reference))


def test_a_changed_option_starts_over(clip, painting, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.mp4"
    real = stylize._FrameRunner.__call__

    def stop_at_frame_3(self, pos, frame, previous):
        if pos == 3:
            raise KeyboardInterrupt
        return real(self, pos, frame, previous)

    monkeypatch.setattr(stylize._FrameRunner, "__call__", stop_at_frame_3)
    assert run(capsys, "video", clip, painting, "-o", out, *FAST)[0] == 130
    code, _, err = run(capsys, "video", clip, painting, "-o", out, *FAST, "--temporal-weight", "500")
    assert code == 130
    assert "were made with other settings (video); starting over" in err
    settings = json.loads((tmp_path / "out.mp4.work" / "restyle-video.json").read_text())
    assert settings["video"]["temporal_weight"] == 500
    assert len(list((tmp_path / "out.mp4.work").glob("frame_*.png"))) == 3  # made again, with the new weight


def test_on_a_pan_the_temporal_loss_cuts_the_warping_error(clip, painting, tmp_path, capsys):
    """Same iterations for every frame, the first included; only the temporal weight differs."""
    each = ["--size", "96", "-n", "12", "--first-iterations", "12", "--precision", "fp32", "--device", "cpu", "-q"]
    errors = {}
    for name, weight in (("temporal", []), ("independent", ["--temporal-weight", "0"])):
        out = tmp_path / f"{name}.mp4"
        code, _, err = run(capsys, "video", clip, painting, "-o", out, *each, *weight)
        assert code == 0, err
        code, report, err = run(capsys, "score", "--video", out, "--content", clip, "--json")
        assert code == 0, err
        errors[name] = json.loads(report)
    temporal, independent = errors["temporal"], errors["independent"]
    assert temporal["frames"] == independent["frames"] == FRAMES
    assert temporal["warping_error"] <= 0.6 * independent["warping_error"], (temporal, independent)
    assert temporal["metrics"]["style_distance"] < 1.5 * independent["metrics"]["style_distance"]
