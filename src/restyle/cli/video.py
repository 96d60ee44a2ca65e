"""``restyle video``: stylise a video with temporal consistency (optimised, or a fast model's)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from restyle.cli.options import add_run_options, positive_int, run_options
from restyle.errors import ConfigError
from restyle.video.defaults import (  # torch-free: --help states them without importing torch
    DEFAULT_CRF,
    DEFAULT_FAST_FLOW_PRESET,
    DEFAULT_FLOW_PRESET,
    DEFAULT_ITERATIONS,
    DEFAULT_TEMPORAL_BLEND,
    DEFAULT_TEMPORAL_WEIGHT,
    FIRST_FRAME_FACTOR,
    FLOW_PRESETS,
)

EPILOG = f"""\
examples:
  restyle video clip.mp4 starry_night.jpg -o out.mp4 --size 256
  restyle video clip.mp4 starry_night.jpg -o out.mp4 --frames 0:48 -n 150
  restyle video frames/ painting.jpg -o styled/ --fps 24          # folders of PNG frames in and out
  restyle video clip.mp4 painting.jpg -o flicker.mp4 --temporal-weight 0   # independent frames
  restyle video clip.mp4 -o fast.mp4 --size 256 --fast-model paintings.pt --blend 1,0,0   # a trained network
  restyle score --video out.mp4 --content clip.mp4                  # warping error and metrics

Frame t starts from the stylised frame t-1 warped by the optical flow (OpenCV DIS) and is kept
close to it where the flow is reliable (Ruder et al. 2016). Each frame stops when it is finished
(the automatic stop; a frame that starts warm from the one before stops sooner); with -n N each
frame gets N iterations and the first frame, which starts from the content, {FIRST_FRAME_FACTOR} x N.
Finished frames are kept in
OUT.work/ until the output is written: running the same command again continues an
interrupted run. Input: any video PyAV decodes, a GIF, or a folder of numbered frames.
Output: .mp4/.mkv/.mov/.avi (H.264, the audio copied), .webm (VP9), .gif, or DIR/ (PNG frames).

With --fast-model (no style images: the model's, weighed by --blend) each frame is one forward pass,
and the previous output frame, warped by the optical flow, is blended into it where the flow is
reliable (--temporal-blend; 0 = independent frames).
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "video", help="stylise a video (temporally consistent, resumable)",
        description="Stylise the frames of INPUT with STYLE image(s), each frame starting from the previous "
                    "stylised frame warped by the optical flow; write a video with the input's frame rate and "
                    "audio. Every run option applies to each frame.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="INPUT STYLE", help="input video (file, GIF or folder of "
                   "numbered frames), then one or more style images (none with --fast-model)")
    p.add_argument("-o", "--output", required=True, help="output: a video file (.mp4, .mkv, .mov, .avi, .webm), "
                   "a .gif, or DIR/ for PNG frames")
    add_run_options(p)
    g = p.add_argument_group("video")
    g.add_argument("--temporal-weight", type=_weight, metavar="W",
                   help="weight of the temporal loss, the mean over pixels of mask*(x - previous frame warped)^2, "
                        f"size-independent (default {DEFAULT_TEMPORAL_WEIGHT:g}); 0 = independent frames")
    g.add_argument("--first-iterations", type=positive_int, metavar="N",
                   help=f"iterations of the first frame, which starts from the content (default: the automatic stop, or "
                        f"{FIRST_FRAME_FACTOR} x -n N; with --temporal-weight 0 every frame gets -n)")
    g.add_argument("--frames", metavar="A:B", help="only input frames A to B-1 (from 0; A: or :B also work)")
    g.add_argument("--fps", type=_rate, metavar="R", help="output frame rate: the input resampled in time "
                   "(default: the input's; a folder of frames: 24)")
    g.add_argument("--temporal-blend", type=_weight, metavar="A",
                   help="with --fast-model: the weight, 0-1, of the previous output frame warped by the optical flow "
                        f"where the flow is reliable (default {DEFAULT_TEMPORAL_BLEND:g}); 0 = independent frames")
    g.add_argument("--flow", choices=FLOW_PRESETS,
                   help=f"DIS optical-flow preset (default {DEFAULT_FLOW_PRESET}; with --fast-model "
                        f"{DEFAULT_FAST_FLOW_PRESET})")
    g.add_argument("--crf", type=positive_int, default=DEFAULT_CRF, metavar="N",
                   help=f"video quality, 0-51, lower is better (libx264's constant rate factor; default {DEFAULT_CRF})")
    g.add_argument("--work-dir", metavar="DIR", help="where finished frames are kept (default OUT.work/)")
    g.add_argument("--keep-frames", action="store_true", help="keep the work folder after writing the output")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_video)


def _weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def _rate(text: str) -> float:
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected frames per second (e.g. 24 or 30000/1001), got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a rate > 0, got '{text}'")
    return value


def cmd_video(args: argparse.Namespace) -> int:
    from restyle import api
    from restyle.config import Config

    options = run_options(args)
    if not args.images:
        raise ConfigError("give an input video (restyle video INPUT STYLE -o OUT.mp4, or INPUT --fast-model NAME)")
    options.setdefault("iterations", DEFAULT_ITERATIONS)
    config = Config.from_values(options, preset=args.preset)
    if len(args.images) < 2 and api.method_for(config).paintings == "required":
        raise ConfigError("give an input video and at least one style image (restyle video INPUT STYLE -o OUT.mp4)")
    bar = FrameBar(quiet=args.quiet)
    try:
        result = api.stylize_video(
            args.images[0], args.images[1:], config, output=args.output, temporal_weight=args.temporal_weight,
            first_iterations=args.first_iterations, frames=args.frames, fps=args.fps, flow=args.flow, crf=args.crf,
            temporal_blend=args.temporal_blend, work_dir=args.work_dir, keep_frames=args.keep_frames, on_event=bar)
    except KeyboardInterrupt:
        bar.close()
        kept = f"; {bar.finished} finished frame(s) kept in {bar.work_dir}" if bar.work_dir and bar.finished else ""
        print(f"restyle: interrupted; no output written{kept}: run the same command to continue", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if not args.quiet:
        pace = (f"; {sum(result.frame_seconds) / len(result.frame_seconds):.1f} s per frame"
                if result.frame_seconds else "")
        resumed = f" ({result.frames - result.stylised} finished before)" if result.stylised < result.frames else ""
        print(f"restyle: wrote {result.output}: {result.frames} frames{resumed} at {result.fps:g} fps, "
              f"{result.width}x{result.height}, video {result.codec}, audio {result.audio}{pace}", file=sys.stderr)
    return 0


class FrameBar:
    """A tqdm bar over the frames (moving within a frame as its iterations go, so the ETA is
    live); it appears once the input has been checked."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar: Any = None
        self.work_dir: str | None = None
        self.finished = 0  # frames finished, this session and before
        self.frame = 0
        self.iterations = 1

    def __call__(self, event: Any) -> None:
        from restyle.api import FrameFinished, FrameStarted, Progress, VideoStarted

        if isinstance(event, VideoStarted):
            self.work_dir, self.finished = event.work_dir, event.done
            if not self.quiet:
                from tqdm import tqdm

                self.bar = tqdm(total=event.total, initial=event.done, unit="frame", dynamic_ncols=True,
                                mininterval=0.5, file=sys.stderr,
                                bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
                self._show(event.done, 0)
        elif isinstance(event, FrameStarted):
            self.frame = event.index
            if event.iterations == 0 and self.bar is not None:  # a fast model's forward pass: no iterations
                self.bar.set_description_str(f"frame {event.index + 1}/{self.bar.total}", refresh=False)
        elif isinstance(event, Progress) and self.bar is not None:
            self.iterations = max(1, event.total - 1)  # the engine's estimate under the automatic stop
            self._show(self.frame, min(event.iteration, self.iterations))
            done = self.frame + min(event.iteration, self.iterations) / self.iterations
            self.bar.update(max(0.0, done - self.bar.n))
        elif isinstance(event, FrameFinished):
            self.finished = event.index + 1
            if self.bar is not None:
                self.bar.update(max(0.0, self.finished - self.bar.n))

    def _show(self, frame: int, iteration: int) -> None:
        if self.bar is not None:
            self.bar.set_description_str(f"frame {min(frame + 1, self.bar.total)}/{self.bar.total} "
                                         f"(it {iteration}/{self.iterations})", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
