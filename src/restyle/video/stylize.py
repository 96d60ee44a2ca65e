"""Stylising a video frame by frame, each frame one run of the engine (Ruder, Dosovitskiy & Brox 2016).

Frame t starts from the stylised frame t−1 warped to t by the optical flow of the input
(disoccluded pixels and motion boundaries from frame t itself: under the automatic stop recoloured
to the stylised frame t−1's colour statistics and, where the first frame runs coarse to fine,
painted at its coarsest size first), and its objective has one more
term, :class:`~restyle.engine.objective.TemporalConsistency`: ``temporal_weight`` times the mean
of ``mask · (x − warped)²``, the mask 1 where the flow is reliable. ``temporal_weight`` 0 gives
independent frames (each from ``--init``, no flow). The first frame gets ``first_iterations``.

With a one-pass method (a fast model, the universal method) each frame is one forward pass, blended
with the previous output frame warped where the flow is reliable (:mod:`.fastframes`); the events,
the work folder, the resuming and the outputs are the same.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restyle._version import __version__
from restyle.config import Config
from restyle.engine import stopping
from restyle.engine.objective import TemporalConsistency
from restyle.errors import ConfigError, OutputError, notice
from restyle.io import files, images
from restyle.methods import check_request, method_for, option_files
from restyle.nn import controls
from restyle.video import fastframes, flow, sink, source
from restyle.video.defaults import (  # noqa: F401  (re-exported)
    DEFAULT_FAST_FLOW_PRESET,
    DEFAULT_ITERATIONS,
    DEFAULT_TEMPORAL_BLEND,
    DEFAULT_TEMPORAL_WEIGHT,
    FIRST_FRAME_FACTOR,
)
from restyle.video.events import FrameFinished, FrameStarted, VideoFinished, VideoStarted
from restyle.video.work import SETTINGS, WorkFolder, file_digest, source_digest


@dataclass(frozen=True)
class VideoOptions:
    """What a video run adds to the per-frame :class:`Config`."""

    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    first_iterations: int | None = None  # None: FIRST_FRAME_FACTOR x the config's iterations (auto: auto)
    frames: str | None = None  # "A:B", input frames A to B-1 (0-based)
    fps: float | None = None  # output frame rate (None: the input's)
    flow: str | None = None  # DIS preset (None: medium; with a fast model, DEFAULT_FAST_FLOW_PRESET)
    crf: int = sink.DEFAULT_CRF  # video quality (libx264's constant rate factor)
    temporal_blend: float | None = None  # with a fast model: the warped previous output's weight (None: default)

    def validate(self) -> None:
        if not (0 <= self.temporal_weight < float("inf")):
            raise ConfigError(f"--temporal-weight must be a finite number >= 0, got {self.temporal_weight}")
        if self.first_iterations is not None and self.first_iterations < 0:
            raise ConfigError("--first-iterations must be >= 0")
        if self.fps is not None and not (0 < self.fps <= 1000):
            raise ConfigError(f"--fps must be > 0 (and at most 1000), got {self.fps}")
        if not (0 <= self.crf <= 51):
            raise ConfigError(f"--crf must be 0-51, got {self.crf}")
        if self.temporal_blend is not None and not (0 <= self.temporal_blend <= 1):
            raise ConfigError(f"--temporal-blend must be in [0, 1], got {self.temporal_blend}")
        if self.flow is not None and self.flow not in flow.PRESETS:
            raise ConfigError(f"unknown --flow '{self.flow}'; choose one of: {', '.join(flow.PRESETS)}")
        source.parse_range(self.frames)

    def flow_preset(self, one_pass: bool) -> str:
        """The DIS preset: the one given, else the default for a one-pass method or the optimiser."""
        if self.flow is not None:
            return self.flow
        return DEFAULT_FAST_FLOW_PRESET if one_pass else flow.DEFAULT_PRESET

    def blend(self) -> float:
        """A fast model's temporal blend: the one given, else :data:`DEFAULT_TEMPORAL_BLEND`."""
        return DEFAULT_TEMPORAL_BLEND if self.temporal_blend is None else self.temporal_blend

    def first(self, config: Config) -> int | None:
        if self.first_iterations is not None:
            return self.first_iterations
        return None if config.iterations is None else FIRST_FRAME_FACTOR * config.iterations


@dataclass
class VideoResult:
    """What a video run produced."""

    output: Path
    frames: int
    fps: float
    width: int
    height: int
    codec: str  # the video encoder ("png" for a folder of frames)
    audio: str  # "copied (aac)", "re-encoded as aac (...)", or "none"
    seconds: float  # this session's
    stylised: int  # frames stylised in this session (the others were finished before)
    frame_seconds: list[float] = field(default_factory=list)  # per frame stylised in this session
    record: dict[str, Any] = field(default_factory=dict)


#: A later frame whose disoccluded pixels are fewer than this share of it is not painted coarse
#: first (a still camera, a small moving object): the pass would cost more than it changes.
NEWLY_SEEN_MIN = 0.002


def working_size(config: Config, width: int, height: int) -> tuple[int, int]:
    """The stylised frames' (width, height): the engine's output size for a frame of the input's."""
    longest = config.scales[-1] if config.scales else config.size
    if longest is None:
        return width, height
    scale = longest / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


def stylize_video(input: str | os.PathLike[str], styles: Sequence[str | os.PathLike[str]], config: Config,
                  output: str | os.PathLike[str], options: VideoOptions = VideoOptions(), *,
                  work_dir: str | os.PathLike[str] | None = None, keep_frames: bool = False,
                  on_event: Callable[[Any], None] | None = None) -> VideoResult:
    """Stylise the video ``input`` with ``styles`` into ``output`` (a video file, a ``.gif``, or
    ``DIR/`` for PNG frames); with a one-pass method (a fast model, the universal method) each
    frame is a forward pass (a fast model takes no ``styles``: its own, weighed by
    ``config.style_blend``). Finished frames go
    to ``work_dir`` (default ``OUTPUT.work/``; for ``DIR/`` the folder itself), which a rerun of
    the same call continues from; it is deleted after the output is written unless ``keep_frames``.
    ``on_event`` receives the events of
    :mod:`restyle.video.events` and, between a frame's start and finish, the engine's events."""
    start = time.perf_counter()
    emit = on_event or (lambda event: None)
    options.validate()
    method = check_request(config, len(styles))
    fast = method.one_pass
    if not fast and options.temporal_blend is not None:
        raise ConfigError(f"--temporal-blend is the one-pass methods' temporal consistency (--fast-model, --method "
                          f"universal); --method {method.name}'s is --temporal-weight")
    info = source.probe(input, folder_fps=Fraction(options.fps).limit_denominator(1001) if options.fps else None)
    kind, target = sink.check_output(output, info)
    indices, rate = source.select(info, options.frames, options.fps)
    style_images = [images.load_image(s, max_pixels=config.max_pixels, role=f"style image {i + 1}")
                    for i, s in enumerate(styles)]
    size = working_size(config, info.width, info.height)
    folder = WorkFolder(target if kind == "folder" else Path(work_dir or f"{target}.work").expanduser().resolve())
    if kind != "folder" and files.same_file(folder.path, info.path):
        raise OutputError(f"the work folder '{folder.path}' is the input; give another --work-dir")
    record = _record(info, styles, config, options, indices, rate, size, fast)
    named = {role: str(Path(path).expanduser().resolve()) for role, path in option_files(config)}
    if named:  # the files the options name (a fast model's, a mask), with their digests
        record["inputs"]["files"] = named
        record["inputs"]["sha256"].update({path: file_digest(path) for path in named.values()})
    folder.open({k: record[k] for k in ("restyle", "config", "video", "inputs")})
    done = folder.finished(len(indices))
    emit(VideoStarted(len(indices), done, float(rate), size[0], size[1], str(folder.path)))

    run: _FrameRunner | fastframes.FastFrameRunner = (
        fastframes.FastFrameRunner(config, options.blend(), options.flow_preset(fast), emit, style_images) if fast
        else _FrameRunner(config, options, style_images, emit))
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, stylised) of the frame before
    for pos, img in source.read_frames(info, indices, start=max(0, done - 1)):
        frame = images.resize_to(img, size) if img.size != size else img
        if pos < done:  # finished before: only its input and output are needed, for the next frame
            previous = (_array(frame), _array(_load_png(folder.frame_path(pos))))
            continue
        emit(FrameStarted(pos, len(indices), run.iterations(pos)))
        t0 = time.perf_counter()
        stylised, loss = run(pos, frame, previous)
        folder.save(pos, stylised)
        previous = (_array(frame), _array(stylised))
        run.frame_seconds.append(time.perf_counter() - t0)
        emit(FrameFinished(pos, len(indices), run.frame_seconds[-1], loss, run.eta(pos, len(indices))))

    frame_files = [folder.frame_path(i) for i in range(len(indices))]
    record["seconds_per_frame"] = (round(sum(run.frame_seconds) / len(run.frame_seconds), 3)
                                   if run.frame_seconds else None)
    codec, audio = _write(kind, target, folder, frame_files, rate, record, info, indices, options)
    record.update(codec=codec, audio=audio)
    if kind != "folder" and not keep_frames:
        folder.remove()
    seconds = time.perf_counter() - start
    emit(VideoFinished(str(target), len(indices), float(rate), codec, audio, seconds))
    return VideoResult(target, len(indices), float(rate), size[0], size[1], codec, audio, seconds,
                       len(run.frame_seconds), run.frame_seconds, record)


class _FrameRunner:
    """One frame's engine run: the start image and the temporal term from the frame before."""

    def __init__(self, config: Config, options: VideoOptions, styles: list[Any], emit: Callable[[Any], None]):
        self.options, self.styles, self.emit = options, styles, emit
        self.temporal = options.temporal_weight > 0
        first = options.first(config) if self.temporal else config.iterations
        # Frames after the first start from the previous stylised frame, warped: its composition is
        # set, so they run at the output size only (coarse-to-fine would blur it and start again).
        later = config.replace(multiscale=False) if self.temporal and config.scales is None else config
        self.configs = {0: config.replace(iterations=first), 1: later}
        # Under the automatic stop what a later frame newly sees starts in the painting's colours and,
        # where the first frame composes coarse to fine, is painted at the coarsest size first; -n
        # keeps the start it always had (frame t's own pixels there), so old commands make old videos.
        self.auto = self.temporal and later.iterations is None
        self.method = method_for(config)
        self.luminance = config.preserve_color == "luminance"
        self.estimator = flow.FlowEstimator(options.flow_preset(False)) if self.temporal else None
        self.frame_seconds: list[float] = []
        self._seconds: dict[int, list[float]] = {0: [], 1: []}  # frame seconds: the first frame, later ones

    def iterations(self, pos: int) -> int | None:
        return self.configs[min(pos, 1)].iterations

    def __call__(self, pos: int, frame: Any, previous: tuple[np.ndarray, np.ndarray] | None) -> tuple[Any, float]:
        config = self.configs[min(pos, 1)]
        init, terms = None, []
        if self.temporal and previous is not None:
            assert self.estimator is not None
            content = _array(frame)
            link = flow.pair(self.estimator, previous[0], content)
            warped = link.warp(previous[1])
            mask, photo = _tensor(link.masks.weights[..., None]), _tensor(content)
            init = mask * _tensor(warped) + (1 - mask) * (_newly_seen(content, previous[1]) if self.auto else photo)
            want = _tensor(warped)
            if self.luminance:  # the network sees (and the loss compares) the luminance alone
                want = controls.gray3(controls.luminance(want))
            terms = [TemporalConsistency(want, mask, self.options.temporal_weight)]
        t0 = time.perf_counter()
        if init is not None and self.auto and link.masks.disoccluded.mean() >= NEWLY_SEEN_MIN:
            init = self._paint_coarse(frame, photo, config, init, mask, terms)
            if config.time_limit is not None:  # one limit for the frame: the coarse pass's seconds count
                config = config.replace(time_limit=max(1e-3, config.time_limit - (time.perf_counter() - t0)))
        result = self.method.run(frame, self.styles, config, on_event=self.emit, start=init, terms=terms)
        if result.stopped_early:
            notice(f"frame {pos + 1}: {result.stopped_early}")
        self._seconds[min(pos, 1)].append(time.perf_counter() - t0)
        return result.image, result.final_loss

    def _paint_coarse(self, frame: Any, photo: torch.Tensor, config: Config, start: torch.Tensor,
                      mask: torch.Tensor, terms: list[Any]) -> torch.Tensor:
        """``start`` with its unreliable pixels (``mask`` 0) painted at the first frame's coarsest size
        first: a run there from ``start`` with the same temporal term, its result upsampled with the
        frame's finer detail added (as the engine's finer stages start). The first frame composes
        coarse to fine and the later ones run at the output size only, so a strip a pan reveals
        would get the output size's finer, noisier marks and seams at its edges. On a 16-frame
        512x288 pan (chelsea x *The Starry Night*, docs/video.md) this pass ended frames 10-16
        with the painting's larger strokes across the revealed strip and their style distance
        0.27-0.30 against 0.36-0.43 before, for 12% more steps (a coarse step counted as a quarter
        of one; on astronaut x *The Scream* 3% fewer, its style distance 12% lower). Nothing to do
        where the first frame runs one stage."""
        first = self.configs[0]  # with --scales the later frames run those stages themselves
        sizes = stopping.stage_sizes(config.size or max(frame.size), None, first.multiscale)
        if first.scales is not None or len(sizes) < 2:
            return start
        limit = None if config.time_limit is None else config.time_limit / 2  # half the frame's, at most
        coarse = self.method.run(frame, self.styles, config.replace(size=sizes[0], time_limit=limit), start=start,
                                 terms=terms)
        x = images.to_tensor(coarse.image)
        h, w = photo.shape[-2:]
        filled = controls.add_detail(controls.upsample(x, (h, w)), photo, (x.shape[-2], x.shape[-1]))
        return mask * start + (1 - mask) * filled

    def eta(self, pos: int, total: int) -> float | None:
        """Seconds left for frames pos+1.. at the pace of the last ten later frames (before any: the
        first frame's time, scaled by the iterations when they are given, else a third of it)."""
        later, first = self._seconds[1][-10:], self._seconds[0]
        if later:
            per = sum(later) / len(later)
        elif first:
            n0, n1 = self.iterations(0), self.iterations(1)
            per = first[0] * (n1 / max(1, n0) if n0 is not None and n1 is not None else 1 / FIRST_FRAME_FACTOR)
        else:
            return None
        return per * (total - pos - 1)


def _write(kind: str, target: Path, folder: WorkFolder, frame_files: list[Path], rate: Fraction,
           record: dict[str, Any], info: source.VideoInfo, indices: list[int],
           options: VideoOptions) -> tuple[str, str]:
    if kind == "folder":
        if info.audio:
            notice("PNG frames have no sound: the audio stream is left out")
        files.atomic_write_text(target / SETTINGS, json.dumps({**record, "codec": "png", "audio": "none"},
                                                              indent=1) + "\n")
        return "png", "none"
    if kind == "gif":
        if info.audio:
            notice("a GIF has no sound: the audio stream is left out")
        sink.write_gif(frame_files, target, rate, {**record, "codec": "gif", "audio": "none"})
        return "gif", "none"
    span = None
    if options.frames is not None:
        span = (info.times[indices[0]], info.times[indices[-1]] + 1 / float(info.fps))
    name, audio = sink.write_video(frame_files, target, rate, record, source=info, span=span, crf=options.crf)
    return sink.codec_label(name), audio


def _record(info: source.VideoInfo, styles: Sequence[Any], config: Config, options: VideoOptions,
            indices: list[int], rate: Fraction, size: tuple[int, int], one_pass: bool) -> dict[str, Any]:
    style_paths = [str(Path(s).expanduser().resolve()) for s in styles]
    if one_pass:  # a forward pass per frame: no iterations, the optimiser's weight unused
        video = {**asdict(options), "flow": options.flow_preset(one_pass), "temporal_weight": None,
                 "first_iterations": None, "temporal_blend": options.blend()}
    else:
        video = {**asdict(options), "flow": options.flow_preset(one_pass),
                 "first_iterations": options.first(config) if options.temporal_weight > 0 else config.iterations}
        del video["temporal_blend"]  # the record of an optimised video as before: its work folders carry on
    return {
        "restyle": __version__,
        "config": config.to_dict(),
        "video": {**video, "rate": str(rate), "frame_count": len(indices), "size": list(size),
                  "source_frames": [indices[0], indices[-1] + 1]},
        "inputs": {"video": str(info.path.resolve()), "styles": style_paths,
                   "sha256": {str(info.path.resolve()): source_digest(info.path, info.files),
                              **{p: file_digest(p) for p in style_paths}}},
    }


def _newly_seen(content: np.ndarray, previous_out: np.ndarray) -> torch.Tensor:
    """The start of the pixels the flow cannot carry over (``1 x 3 x H x W``): frame t itself with
    each channel's mean and spread matched to the previous output frame's. Measured on 16-frame pans
    (docs/video.md) against frame t's own colours: a strip the pan reveals starts and ends in the
    painting's colours instead of the photo's, in 7-13% fewer steps with 3-5% less warping error
    at 256 px. A match of the full colour covariance (``controls.match_color``) measured no better
    (the 512x288 clip's style distance +14% against +7%), so the simpler match it is."""
    pixels, painted = content.reshape(-1, 3), previous_out.reshape(-1, 3)
    scale = painted.std(0) / np.maximum(pixels.std(0), 1e-6)
    return _tensor(np.clip((content - pixels.mean(0)) * scale + painted.mean(0), 0, 1))


def _load_png(path: Path) -> Any:
    return images.load_image(path, max_pixels=None, role="finished frame")


def _array(img: Any) -> np.ndarray:
    """An RGB PIL image as ``H x W x 3`` float32 in [0, 1]."""
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255


def _tensor(a: np.ndarray) -> torch.Tensor:
    """``H x W x C`` -> ``1 x C x H x W`` float32."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()
