"""A demo clip from a still photo: a slow pan and zoom (real camera motion, so the optical flow
has something to do), encoded with PyAV, optionally with a tone as its audio track.

>>> from restyle.video.demo import pan_zoom_clip
>>> pan_zoom_clip("src/restyle/examples/shipwreck.jpg", "clip.mp4", frames=48, size=(256, 144))
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from restyle.video.source import import_av


def pan_zoom_frames(photo: str | os.PathLike[str] | Image.Image, frames: int, size: tuple[int, int], *,
                    pan: float = 0.25, zoom: float = 1.15) -> Iterator[Image.Image]:
    """``frames`` RGB images of ``size`` (width, height): a window of the photo's full height
    (at the output's aspect ratio) moving ``pan`` of the photo's width to the right while zooming
    in by ``zoom`` (sub-pixel steps, bicubic)."""
    img = photo.convert("RGB") if isinstance(photo, Image.Image) else Image.open(photo).convert("RGB")
    w, h = img.size
    aspect = size[0] / size[1]
    base_h = min(h, w * (1 - pan) / aspect)  # the widest window that leaves room to pan
    base_w = base_h * aspect
    for k in range(frames):
        s = k / max(1, frames - 1)
        s = s * s * (3 - 2 * s)  # ease in and out
        z = 1 + (zoom - 1) * s
        cw, ch = base_w / z, base_h / z
        cx, cy = base_w / 2 + s * pan * w, h / 2
        left, top = cx - cw / 2, cy - ch / 2
        # output pixel (u, v) reads photo pixel (left + u * cw / W, top + v * ch / H)
        yield img.transform(size, Image.Transform.AFFINE,
                            (cw / size[0], 0, left, 0, ch / size[1], top), resample=Image.Resampling.BICUBIC)


def pan_zoom_clip(photo: str | os.PathLike[str] | Image.Image, output: str | os.PathLike[str], *, frames: int = 48,
                  size: tuple[int, int] = (256, 144), fps: int | Fraction = 12, tone: float | None = 440.0,
                  pan: float = 0.25, zoom: float = 1.15, audio_codec: str = "aac") -> Path:
    """Write the pan-and-zoom clip to ``output`` (H.264 in an .mp4/.mkv/.mov, with a sine
    ``tone`` in Hz as ``audio_codec`` audio unless None; or PNG frames when ``output`` is a folder)."""
    out = Path(output)
    images = pan_zoom_frames(photo, frames, size, pan=pan, zoom=zoom)
    if out.suffix == "":
        out.mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(images):
            frame.save(out / f"{k + 1:04d}.png")
        return out
    av = import_av()
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"crf": "12", "preset": "fast"}
        audio = container.add_stream(audio_codec, rate=44100) if tone is not None else None
        if audio is not None:
            audio.layout = "mono"
        for k, frame in enumerate(images):
            vf = av.VideoFrame.from_image(frame)
            vf.pts = k
            for packet in video.encode(vf):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None and tone is not None:
            seconds = frames / float(fps)
            t = np.arange(round(seconds * 44100)) / 44100
            samples = (0.2 * np.sin(2 * np.pi * tone * t)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, 0
            for packet in audio.encode(af):
                container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return out
