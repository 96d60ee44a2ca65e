"""Specification of `restyle video` from the command line: the output keeps the input's frame count,
rate and audio (or the frames and rate asked for); GIFs and folders of frames go in and out; bad
inputs and outputs are refused in one line with exit code 2 and no output file; help stays light."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from video_helpers import FAST, FPS, FRAMES

from shared_helpers import run_cli as run

pytestmark = pytest.mark.usefixtures("no_debug")  # errors as a user sees them


def streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        info: dict[str, object] = {"frames": sum(1 for _ in c.decode(video)), "rate": video.average_rate,
                                   "codec": video.codec_context.name, "size": (video.width, video.height)}
    with av.open(str(path)) as c:
        if c.streams.audio:
            audio = c.streams.audio[0]
            packets = [p for p in c.demux(audio) if p.pts is not None]
            info["audio"] = audio.codec_context.name
            info["audio_seconds"] = float((packets[-1].pts + packets[-1].duration) * packets[-1].time_base) - \
                float(packets[0].pts * packets[0].time_base)
    return info


def only_file_left(folder: Path, *names: str) -> None:
    """No partial output or temporary file in ``folder`` beyond ``names``."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# ---- what comes out --------------------------------------------------------------------------


def test_the_output_keeps_the_frame_count_rate_and_audio(clip, painting, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, _, err = run(capsys, "video", clip, painting, "-o", out, *FAST[:-1])
    assert code == 0, err
    got, want = streams(out), streams(clip)
    assert got["frames"] == want["frames"] == FRAMES
    assert got["rate"] == want["rate"] == Fraction(FPS)
    assert got["codec"] == "h264" and "H.264 (libx264)" in err
    assert got["audio"] == "aac" and "audio copied (aac)" in err
    assert got["audio_seconds"] == pytest.approx(want["audio_seconds"], abs=0.03)
    assert got["size"] == (64, 36)
    only_file_left(tmp_path, "out.mp4")  # the work folder is gone once the video is written


def test_frames_and_fps_pick_and_resample_the_input_and_trim_the_audio(clip, painting, tmp_path, capsys):
    code, _, err = run(capsys, "video", clip, painting, "-o", tmp_path / "part.mkv", "--frames", "2:8", *FAST)
    assert code == 0, err
    part = streams(tmp_path / "part.mkv")
    assert part["frames"] == 6 and part["rate"] == FPS
    assert part["audio_seconds"] == pytest.approx(6 / FPS, abs=0.05)
    code, _, err = run(capsys, "video", clip, painting, "-o", tmp_path / "half.mp4", "--fps", "6", *FAST)
    assert code == 0, err
    half = streams(tmp_path / "half.mp4")
    assert half["frames"] == FRAMES // 2 and half["rate"] == 6


def test_audio_the_container_cannot_hold_is_re_encoded(tmp_path, painting, capsys):
    from video_helpers import EXAMPLES

    from restyle.video.demo import pan_zoom_clip

    clip = pan_zoom_clip(EXAMPLES / "shipwreck.jpg", tmp_path / "wavpack.mkv", frames=4, size=(64, 36),
                         audio_codec="wavpack")  # Matroska holds WavPack, MP4 does not
    code, _, err = run(capsys, "video", clip, painting, "-o", tmp_path / "out.mp4", *FAST[:-1])
    assert code == 0, err
    assert "audio re-encoded as aac" in err
    got = streams(tmp_path / "out.mp4")
    assert got["frames"] == 4 and got["audio"] == "aac"
    assert got["audio_seconds"] == pytest.approx(4 / 12, abs=0.05)


def test_a_gif_goes_in_and_a_folder_of_png_frames_comes_out(gif, painting, tmp_path, capsys):
    out = tmp_path / "frames"
    code, _, err = run(capsys, "video", gif, painting, "-o", f"{out}/", *FAST)
    assert code == 0, err
    names = sorted(p.name for p in out.glob("frame_*.png"))
    assert names == [f"frame_{i:06d}.png" for i in range(1, FRAMES + 1)]
    with Image.open(out / names[0]) as img:
        assert img.size == (64, 36)
    assert (out / "restyle-video.json").is_file()


def test_a_folder_of_numbered_frames_goes_in_and_a_gif_comes_out(frame_folder, painting, tmp_path, capsys):
    out = tmp_path / "out.gif"
    code, _, err = run(capsys, "video", frame_folder, painting, "-o", out, "--fps", "10", *FAST)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.n_frames == FRAMES and img.info["duration"] == 100
        first = np.asarray(img.convert("RGB"), dtype=np.float64)
    with Image.open(frame_folder / "1.png") as src:  # 1.png, not 10.png, is the first frame
        want = np.asarray(src.convert("RGB").resize((64, 36), Image.Resampling.LANCZOS), dtype=np.float64)
    others = Image.open(frame_folder / "10.png").convert("RGB").resize((64, 36), Image.Resampling.LANCZOS)
    assert np.abs(first - want).mean() < np.abs(first - np.asarray(others, dtype=np.float64)).mean()


# ---- bad input and output --------------------------------------------------------------------


def refused(capsys, tmp_path: Path, *argv: object, says: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "video", *argv, *FAST)
    assert code == 2, err
    assert err.startswith("restyle: error: ") and err.count("\n") == 1 and says in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary or work files


def test_a_file_that_is_not_a_video_is_refused(painting, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    refused(capsys, tmp_path, text, painting, "-o", tmp_path / "out.mp4", says="not a video")


def test_a_truncated_video_is_refused(clip, painting, tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size * 2 // 3])
    refused(capsys, tmp_path, cut, painting, "-o", tmp_path / "out.mp4", says="truncated")


def test_a_truncated_video_with_its_index_first_is_refused(clip, painting, tmp_path, capsys):
    faststart = tmp_path / "fast.mp4"
    with av.open(str(clip)) as src, av.open(str(faststart), "w", options={"movflags": "+faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = out
                dst.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 2 // 3])
    faststart.unlink()
    refused(capsys, tmp_path, cut, painting, "-o", tmp_path / "out.mp4", says="truncated")


def test_a_video_without_frames_is_refused(painting, tmp_path, capsys):
    empty = tmp_path / "empty.avi"  # (an MP4 or MKV without frames has no stream at all)
    with av.open(str(empty), "w") as c:
        stream = c.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        c.start_encoding()  # the header, with the stream, and no frame after it
    refused(capsys, tmp_path, empty, painting, "-o", tmp_path / "out.mp4", says="no frames")


def test_a_file_without_a_video_stream_is_refused(painting, tmp_path, capsys):
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as c:
        stream = c.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4410), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            c.mux(packet)
    refused(capsys, tmp_path, sound, painting, "-o", tmp_path / "out.mp4", says="no video stream")


def test_a_still_image_or_an_empty_folder_is_refused(painting, tmp_path, capsys):
    refused(capsys, tmp_path, painting, painting, "-o", tmp_path / "out.mp4", says="still image")
    (tmp_path / "empty").mkdir()
    refused(capsys, tmp_path, tmp_path / "empty", painting, "-o", tmp_path / "out.mp4", says="without image frames")


def test_an_unwritable_output_is_refused_before_any_work(clip, painting, read_only_dir, tmp_path, capsys):
    refused(capsys, tmp_path, clip, painting, "-o", read_only_dir / "out.mp4", says="not writable")
    refused(capsys, tmp_path, clip, painting, "-o", tmp_path / "missing" / "out.mp4", says="does not exist")
    refused(capsys, tmp_path, clip, painting, "-o", tmp_path / "out.txt", says="unknown video type")
    assert list(read_only_dir.iterdir()) == []


def test_the_input_is_never_the_output(clip, painting, tmp_path, capsys):
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(clip.read_bytes())
    refused(capsys, tmp_path, copy, painting, "-o", copy, says="is the input")
    assert copy.read_bytes() == clip.read_bytes()


def test_bad_video_options_are_refused(clip, painting, tmp_path, capsys):
    refused(capsys, tmp_path, clip, painting, "-o", tmp_path / "o.mp4", "--frames", "5:2", says="greater than A")
    refused(capsys, tmp_path, clip, painting, "-o", tmp_path / "o.mp4", "--frames", "40:", says="has 10 frames")
    refused(capsys, tmp_path, clip, painting, "-o", tmp_path / "o.mp4", "--temporal-weight", "-1", says=">= 0")


# ---- help ------------------------------------------------------------------------------------


def test_help_imports_neither_torch_nor_av_nor_opencv():
    code = ("import sys\nfrom restyle.cli import main\n"
            "for argv in (['--help'], ['video', '--help'], ['score', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'av', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--temporal-weight" in out and "--video" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_the_command_line_states_the_video_defaults():
    from restyle.cli import video as cli
    from restyle.video import flow, stylize

    assert cli.DEFAULT_TEMPORAL_WEIGHT == stylize.DEFAULT_TEMPORAL_WEIGHT
    assert cli.FIRST_FRAME_FACTOR == stylize.FIRST_FRAME_FACTOR
    assert cli.DEFAULT_ITERATIONS == stylize.DEFAULT_ITERATIONS
    assert cli.FLOW_PRESETS == flow.PRESETS


def test_frames_stop_when_finished_unless_told_and_n_gives_the_first_three_times_as_many(clip, painting, tmp_path,
                                                                                        capsys, monkeypatch):
    from restyle.video import stylize

    seen = []
    monkeypatch.setattr(stylize, "stylize_video", lambda i, s, config, o, video, **kw: seen.append((config, video)))
    run(capsys, "video", clip, painting, "-o", tmp_path / "o.mp4")  # (the stand-in returns no result to report)
    run(capsys, "video", clip, painting, "-o", tmp_path / "o.mp4", "-n", "40", "--temporal-weight", "0")
    run(capsys, "video", clip, painting, "-o", tmp_path / "o.mp4", "-n", "40")
    (default, video), (given, independent), (forced, warm) = seen
    assert default.iterations is None and video.first(default) is None and video.temporal_weight == 1e3
    assert given.iterations == 40 and independent.temporal_weight == 0
    assert forced.iterations == 40 and warm.first(forced) == 120
