"""Writing the output: a video file (H.264 with libx264 where FFmpeg has it; the audio stream
copied, or re-encoded where the container cannot hold it), an animated GIF, or a folder of PNG
frames. A file is written to a temporary file beside it and renamed at the end: a failed or
interrupted run never leaves a partial output."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import suppress
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from restyle.errors import ConfigError, OutputError, notice
from restyle.io import files
from restyle.video.defaults import DEFAULT_CRF
from restyle.video.source import VideoInfo, import_av

#: Output file types by extension.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
#: Video encoders to try, best first, per extension; the first FFmpeg has is used.
ENCODERS = {".webm": ("libvpx-vp9", "libvpx", "libaom-av1"), "": ("libx264", "libopenh264", "h264", "mpeg4")}
#: The key of the run record in a video file's metadata (MP4 ``©cmt``, Matroska ``COMMENT``).
RECORD_KEY = "comment"


def output_kind(output: str | os.PathLike[str]) -> str:
    """``"folder"`` (a path ending in ``/`` or an existing directory: PNG frames), ``"gif"`` or ``"video"``."""
    text = os.fspath(output)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return "folder"
    suffix = Path(text).suffix.lower()
    if suffix == ".gif":
        return "gif"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise ConfigError(f"output '{text}': unknown video type '{suffix or '(none)'}'; use one of "
                      f"{', '.join(VIDEO_SUFFIXES)}, .gif, or DIR/ for PNG frames")


def check_output(output: str | os.PathLike[str], source: VideoInfo) -> tuple[str, Path]:
    """(kind, resolved path) of a writable output that is not the input; OutputError otherwise."""
    kind = output_kind(output)
    path = Path(output).expanduser()
    if kind == "folder":
        if path.exists() and not path.is_dir():
            raise OutputError(f"output folder '{output}' is a file")
        if files.same_file(path, source.path):
            raise OutputError(f"output folder '{output}' is the input; choose another folder")
        parent = path.resolve().parent
        if not path.exists():
            files.check_output_path(parent / ".restyle-probe")  # the parent: exists and is writable
        elif not os.access(path, os.W_OK):
            raise OutputError(f"output folder '{output}' is not writable")
        return kind, path.resolve()
    if files.same_file(path, source.path):
        raise OutputError(f"output '{output}' is the input video; choose another file name")
    return kind, files.check_output_path(path)


def encoder(suffix: str) -> str:
    """The video encoder for an output of extension ``suffix``."""
    av = import_av()
    for name in ENCODERS.get(suffix.lower(), ENCODERS[""]):
        with suppress(av.error.FFmpegError, ValueError):
            av.codec.Codec(name, "w")
            return name
    raise OutputError(f"no video encoder for '{suffix}' files in this FFmpeg build")


def codec_label(name: str) -> str:
    return {"libx264": "H.264 (libx264)", "libopenh264": "H.264 (OpenH264)", "h264": "H.264",
            "mpeg4": "MPEG-4 Part 2 (no H.264 encoder in this FFmpeg)", "libvpx-vp9": "VP9 (libvpx)",
            "libvpx": "VP8 (libvpx)", "libaom-av1": "AV1 (libaom)"}.get(name, name)


def _temporary(target: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    return Path(name)


def _commit(tmp: Path, target: Path) -> None:
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_gif(frames: Sequence[Path], target: Path, fps: Fraction, record: dict[str, Any]) -> None:
    """An animated GIF (looping; per-frame palettes) of the PNG ``frames``, atomically."""
    tmp = _temporary(target)
    try:
        images = [Image.open(f).convert("RGB") for f in frames]
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, round(1000 / float(fps))), optimize=False,
                       comment=json.dumps(record).encode())
        _commit(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OutputError(f"cannot write '{target}': {err.strerror or err}") from None
        raise


def write_video(frames: Sequence[Path], target: Path, fps: Fraction, record: dict[str, Any], *,
                source: VideoInfo | None = None, span: tuple[float, float] | None = None,
                crf: int = DEFAULT_CRF) -> tuple[str, str]:
    """Encode the PNG ``frames`` at ``fps`` into ``target`` (atomically), with ``source``'s audio
    (the part in ``span``, seconds from its first frame; None: all of it). Returns (codec, audio)."""
    av = import_av()
    name = encoder(target.suffix)
    tmp = _temporary(target)
    try:
        with av.open(str(tmp), "w") as out:
            out.metadata[RECORD_KEY] = json.dumps(record)
            with Image.open(frames[0]) as first:
                width, height = first.size
            if width % 2 or height % 2:  # yuv420p, which every player plays, halves the chroma both ways
                notice(f"{width}x{height} frames cropped to {width - width % 2}x{height - height % 2} "
                       "(the video's 4:2:0 colour needs even sides)")
                width, height = width - width % 2, height - height % 2
            stream = out.add_stream(name, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = Fraction(1) / fps
            stream.options = _encoder_options(name, crf)
            audio = _Audio(out, source, span) if source is not None and source.audio else None
            for j, path in enumerate(frames):
                with Image.open(path) as img:
                    rgb = img.convert("RGB").crop((0, 0, width, height))
                frame = av.VideoFrame.from_image(rgb)
                frame.pts = j
                for packet in stream.encode(frame):
                    out.mux(packet)
                if audio is not None:
                    audio.mux_until((j + 1) / float(fps))
            for packet in stream.encode():
                out.mux(packet)
            if audio is not None:
                audio.mux_until(None)
            described = audio.described if audio is not None else "none"
        _commit(tmp, target)
        return name, described
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, av.error.FFmpegError):
            raise OutputError(f"cannot write '{target}': {' '.join(str(err).split())}") from None
        if isinstance(err, OSError):
            raise OutputError(f"cannot write '{target}': {err.strerror or err}") from None
        raise


def _encoder_options(name: str, crf: int) -> dict[str, str]:
    if name == "libx264":
        return {"crf": str(crf), "preset": "medium"}
    if name in ("libvpx-vp9", "libaom-av1"):
        return {"crf": str(crf + 13), "b": "0"}
    if name == "mpeg4":
        return {"qscale": "3"}
    return {}


class _Audio:
    """The input's audio stream going into the output: packets copied where the container takes
    the codec, else decoded and re-encoded with the container's default audio codec."""

    def __init__(self, out: Any, source: VideoInfo, span: tuple[float, float] | None):
        av = import_av()
        self.container = av.open(str(source.path))
        self.input = self.container.streams.audio[0]
        codec = self.input.codec_context.name
        self.copy = codec in out.supported_codecs
        if self.copy:
            self.stream = out.add_stream_from_template(self.input)
            self.described = f"copied ({codec})"
        else:
            target = out.default_audio_codec
            self.stream = out.add_stream(target, rate=self.input.codec_context.sample_rate)
            self.stream.layout = self.input.codec_context.layout
            self.described = f"re-encoded as {target} ({codec} does not fit a {Path(out.name).suffix} file)"
            notice(f"the audio ({codec}) cannot go into a {Path(out.name).suffix} file as it is; re-encoded as {target}")
        self.out = out
        # The video's first frame is time 0 of the output; keep what lies in the span.
        self.offset = source.start + (span[0] if span else 0.0)
        self.end = source.start + span[1] if span else None
        self.packets: Iterator[Any] = self.container.demux(self.input)
        self.pending: Any = None
        self.done = False

    def mux_until(self, until: float | None) -> None:
        """Mux the audio up to output time ``until`` (seconds; None: all that is left)."""
        while not self.done:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                self._close()
                return
            if packet.pts is None or packet.size == 0:  # the demuxer's end-of-stream packet
                continue
            t = float(packet.pts * packet.time_base)
            if until is not None and t - self.offset > until:
                self.pending = packet
                return
            if self.end is not None and t >= self.end:
                self._close()
                return
            if self.end is not None and t < self.offset:
                continue  # before the chosen frames
            self._write(packet)

    def _write(self, packet: Any) -> None:
        shift = round(self.offset / packet.time_base)
        if self.copy:
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.stream
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for encoded in self.stream.encode(frame):
                self.out.mux(encoded)

    def _close(self) -> None:
        if not self.copy:
            for encoded in self.stream.encode():
                self.out.mux(encoded)
        self.container.close()
        self.done = True


def read_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record a restyle video output carries (None: it has none, or is not one)."""
    p = Path(path)
    try:
        if p.is_dir():
            text = (p / "restyle-video.json").read_text()
        elif p.suffix.lower() == ".gif":
            with Image.open(p) as img:
                raw = img.info.get("comment", b"")
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
        else:
            av = import_av()
            with av.open(str(p)) as container:
                text = container.metadata.get(RECORD_KEY, "")
        data = json.loads(text)
    except Exception:  # noqa: BLE001 - no readable record is "no record"
        return None
    return data if isinstance(data, dict) and "video" in data else None
