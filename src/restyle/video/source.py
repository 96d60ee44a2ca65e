"""Reading a video: any file PyAV's FFmpeg decodes (MP4, MKV, WebM, MOV, AVI, animated GIF, ...)
or a folder of numbered image files. :func:`probe` decodes the whole input once, so a file that
is not a video, has no video stream, has no frames or is truncated is refused before any work,
in one line; :func:`read_frames` then yields the selected frames as RGB images."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from restyle.errors import ConfigError, RestyleError

#: Image files a folder of frames may hold.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: The frame rate of a folder of frames when --fps does not say.
FOLDER_FPS = Fraction(24)
#: Formats FFmpeg opens still images with: such a file is an image, not a video.
_STILL_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "pgm_pipe", "ppm_pipe",
                  "qoi_pipe", "svg_pipe", "j2k_pipe", "jpegls_pipe", "dpx_pipe", "exr_pipe", "pam_pipe"}


class InputVideoError(RestyleError):
    """The input video is missing, unreadable or unusable."""


def import_av() -> Any:
    try:
        import av
    except ImportError:
        raise ConfigError("video needs PyAV: pip install 'restyle[video]'") from None
    return av


@dataclass
class VideoInfo:
    """An input as probed: ``frames`` decodable frames, their times in seconds from the first."""

    path: Path
    kind: str  # "file" or "folder"
    frames: int
    fps: Fraction  # the input's own rate (a folder's: the one it was probed with)
    width: int
    height: int
    times: list[float] = field(repr=False)
    audio: bool = False  # has an audio stream
    files: list[Path] = field(default_factory=list, repr=False)  # a folder's frames, in order
    start: float = 0.0  # the first frame's time in the file (seconds), for trimming the audio


def probe(path: str | os.PathLike[str], *, folder_fps: Fraction | None = None) -> VideoInfo:
    """Check and describe the input at ``path`` (a video file, a GIF or a folder of frames)."""
    p = Path(path).expanduser()
    label = f"input video '{os.fspath(path)}'"
    if p.is_dir():
        return _probe_folder(p, label, folder_fps or FOLDER_FPS)
    if not p.exists():
        raise InputVideoError(f"{label}: not found")
    if not os.access(p, os.R_OK):
        raise InputVideoError(f"{label}: cannot be read (permission denied)")
    return _probe_file(p, label)


def _probe_file(p: Path, label: str) -> VideoInfo:
    av = import_av()
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as err:
        raise InputVideoError(f"{label}: not a video PyAV can read, or truncated ({_why(err)})") from None
    with container:
        if container.format.name in _STILL_FORMATS:
            raise InputVideoError(f"{label}: is a still image, not a video (use restyle run)")
        if not container.streams.video:
            raise InputVideoError(f"{label}: has no video stream")
        stream = container.streams.video[0]
        audio = bool(container.streams.audio)
        times: list[float] = []
        size: tuple[int, int] | None = None
        try:
            for frame in container.decode(stream):
                times.append(_seconds(frame, len(times), stream))
                if size is None:
                    size = _display_size(frame)
        except av.error.FFmpegError as err:
            raise InputVideoError(f"{label}: cannot decode frame {len(times) + 1}; the file is truncated or "
                                  f"corrupt ({_why(err)})") from None
        declared = int(stream.frames or 0)
        if not times or size is None:
            raise InputVideoError(f"{label}: has no frames")
        if declared and len(times) < declared:
            raise InputVideoError(f"{label}: is truncated (its header says {declared} frames; "
                                  f"{len(times)} decode)")
        rate = stream.average_rate or stream.guessed_rate or _rate_from(times)
    start = times[0]
    return VideoInfo(p, "file", len(times), Fraction(rate).limit_denominator(1001 * 1000),
                     size[0], size[1], [t - start for t in times], audio, start=start)


def _seconds(frame: Any, index: int, stream: Any) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    rate = stream.average_rate or stream.guessed_rate or 25
    return index / float(rate)


def _rate_from(times: Sequence[float]) -> Fraction:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return Fraction(len(times) - 1) / Fraction(span) if span > 0 else Fraction(25)


def _why(err: Exception) -> str:
    return " ".join(str(getattr(err, "strerror", None) or err).split()) or type(err).__name__


def _display_size(frame: Any) -> tuple[int, int]:
    turned = int(getattr(frame, "rotation", 0) or 0) % 180 == 90
    return (frame.height, frame.width) if turned else (frame.width, frame.height)


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name))


def _probe_folder(p: Path, label: str, fps: Fraction) -> VideoInfo:
    files = sorted((f for f in p.iterdir() if f.suffix.lower() in FRAME_SUFFIXES and f.is_file()
                    and not f.name.startswith(".")), key=_natural_key)
    if not files:
        raise InputVideoError(f"{label}: a folder without image frames ({', '.join(FRAME_SUFFIXES)})")
    sizes = {}
    for f in files:
        try:
            with Image.open(f) as img:
                sizes[f] = img.size
        except (OSError, ValueError, SyntaxError) as err:
            raise InputVideoError(f"{label}: frame '{f.name}' is not an image file or is corrupt ({_why(err)})") from None
    first = sizes[files[0]]
    odd = next((f for f in files if sizes[f] != first), None)
    if odd is not None:
        raise InputVideoError(f"{label}: frame '{odd.name}' is {sizes[odd][0]}x{sizes[odd][1]}, the first frame "
                              f"'{files[0].name}' {first[0]}x{first[1]}; frames must have one size")
    times = [i / float(fps) for i in range(len(files))]
    return VideoInfo(p, "folder", len(files), fps, first[0], first[1], times, False, files)


# ---- selecting and reading frames ------------------------------------------------------------


def parse_range(text: str | None) -> tuple[int, int | None]:
    """``"A:B"`` (0-based, B excluded; either may be left out) -> (A, B)."""
    if text is None or text.strip() in ("", ":"):
        return 0, None
    m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if m is None:
        raise ConfigError(f"--frames takes A:B (first frame A, up to but not including B, from 0), got '{text}'")
    a = int(m.group(1)) if m.group(1) else 0
    b = int(m.group(2)) if m.group(2) else None
    if b is not None and b <= a:
        raise ConfigError(f"--frames {text}: B must be greater than A")
    return a, b


def select(info: VideoInfo, frames: str | None = None, fps: float | None = None) -> tuple[list[int], Fraction]:
    """The input frames the output is made of, in order (repeats where ``fps`` is higher than the
    input's), and the output frame rate: ``frames`` (``A:B``) picks input frames, ``fps``
    resamples them in time (the nearest frame to each output frame's time)."""
    a, b = parse_range(frames)
    b = info.frames if b is None else min(b, info.frames)
    if a >= info.frames:
        raise ConfigError(f"--frames {frames}: the input has {info.frames} frames (0 to {info.frames - 1})")
    chosen = list(range(a, b))
    if fps is None or info.kind == "folder":
        return chosen, Fraction(fps).limit_denominator(1001) if fps else info.fps
    if not fps > 0:
        raise ConfigError(f"--fps must be > 0, got {fps}")
    rate = Fraction(fps).limit_denominator(1001)
    t0 = info.times[a]
    end = info.times[b - 1] + 1 / float(info.fps)
    count = max(1, round((end - t0) * float(rate)))
    out, k = [], a
    for j in range(count):
        t = t0 + j / float(rate)
        while k + 1 < b and abs(info.times[k + 1] - t) < abs(info.times[k] - t) - 1e-9:
            k += 1
        out.append(k)
    return out, rate


def read_frames(info: VideoInfo, indices: Sequence[int], start: int = 0) -> Iterator[tuple[int, Image.Image]]:
    """``(position, RGB image)`` for ``indices[start:]``, decoding the input once, in order."""
    wanted: dict[int, list[int]] = {}
    for pos in range(start, len(indices)):
        wanted.setdefault(indices[pos], []).append(pos)
    if not wanted:
        return
    last = max(wanted)
    if info.kind == "folder":
        from restyle.io import images

        for i in sorted(wanted):
            img = images.load_image(info.files[i], max_pixels=None, role=f"frame '{info.files[i].name}'")
            for pos in wanted[i]:
                yield pos, img
        return
    av = import_av()
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                img = upright(frame)
                for pos in wanted[i]:
                    yield pos, img
            if i >= last:
                return


def upright(frame: Any) -> Image.Image:
    """A decoded frame as an RGB image the way players show it: turned by its display matrix
    (phone videos), i.e. ``frame.rotation`` degrees counter-clockwise, as FFmpeg's autorotate does."""
    img = frame.to_image()
    turn = round(getattr(frame, "rotation", 0) or 0) % 360
    return img.rotate(turn, expand=True) if turn else img
