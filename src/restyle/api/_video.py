"""Videos (the restyle[video] extra: PyAV and OpenCV load when a video function runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from restyle.api._run import resolve_config, style_list
from restyle.config import Config
from restyle.errors import ConfigError
from restyle.methods import method_for

if TYPE_CHECKING:
    from restyle.video import VideoResult, VideoScores


def stylize_video(
    input: str | Path,
    styles: Any = None,
    config: Config | None = None,
    *,
    output: str | Path,
    preset: str | None = None,
    temporal_weight: float | None = None,
    first_iterations: int | None = None,
    frames: str | None = None,
    fps: float | None = None,
    flow: str | None = None,
    crf: int = 18,
    temporal_blend: float | None = None,
    work_dir: str | Path | None = None,
    keep_frames: bool = False,
    on_event: Callable[[Any], None] | None = None,
    **options: Any,
) -> VideoResult:
    """Stylise the video ``input`` (a file PyAV decodes, a GIF, or a folder of numbered frames) with
    ``styles`` (paths) into ``output``: a video file (H.264 where FFmpeg has libx264, the audio copied),
    a ``.gif``, or ``DIR/`` for PNG frames; same frame count and rate as the input unless ``frames``
    (``"A:B"``) or ``fps`` say otherwise. ``config``/``preset``/``options`` are each frame's run, as in
    :func:`stylize` (``iterations`` defaults to :data:`restyle.video.stylize.DEFAULT_ITERATIONS`,
    the automatic stop). ``temporal_weight`` (default
    :data:`restyle.video.DEFAULT_TEMPORAL_WEIGHT`; 0 = independent frames) weighs closeness to the
    previous stylised frame warped by the optical flow; the first frame gets ``first_iterations``
    (default: the automatic stop, or 3 x ``iterations`` when they are given, with a temporal weight;
    else the same). Finished frames are kept
    in ``work_dir`` (default ``OUTPUT.work/``) and a rerun continues from them. ``on_event`` receives
    :class:`VideoStarted`, per frame :class:`FrameStarted`, the engine's events, :class:`FrameFinished`,
    then :class:`VideoFinished`.

    With a one-pass method (a fast model, a trained network whose styles replace ``styles``, or
    ``method="universal"``) each frame is one forward pass, and the temporal consistency
    is ``temporal_blend`` (default :data:`restyle.video.defaults.DEFAULT_TEMPORAL_BLEND`; 0 =
    independent frames): the weight of the previous output frame, warped by the optical flow, where
    the flow is reliable (:mod:`restyle.video.fastframes`). ``flow``: the DIS preset (default medium;
    with a fast model :data:`restyle.video.defaults.DEFAULT_FAST_FLOW_PRESET`)."""
    from restyle.video import DEFAULT_TEMPORAL_WEIGHT, VideoOptions
    from restyle.video import stylize_video as _stylize_video
    from restyle.video.stylize import DEFAULT_ITERATIONS

    styles = [] if styles is None else style_list(styles)
    config = resolve_config(config, preset, {"iterations": DEFAULT_ITERATIONS, **options} if config is None
                            else options)
    method = method_for(config)
    if method.one_pass and (temporal_weight is not None or first_iterations is not None):
        raise ConfigError(f"--temporal-weight and --first-iterations are the optimiser's; with --method {method.name} "
                          "each frame is one forward pass and the temporal consistency is --temporal-blend")
    video = VideoOptions(DEFAULT_TEMPORAL_WEIGHT if temporal_weight is None else float(temporal_weight),
                         first_iterations, frames, fps, flow, crf,
                         None if temporal_blend is None else float(temporal_blend))
    return _stylize_video(input, list(styles), config, output, video, work_dir=work_dir, keep_frames=keep_frames,
                          on_event=on_event)


def score_video(output: str | Path, content: str | Path | None = None, styles: Sequence[str | Path] | None = None,
                *, style_blend: Sequence[float] | None = None) -> VideoScores:
    """The temporal warping error of the video ``output`` against its input video ``content`` (default:
    the one its record names), the input's own, and the means over frames of :func:`score`'s metrics
    (the style ones when ``styles`` are given or recorded)."""
    from restyle.video import score_video as _score_video

    return _score_video(output, content, styles, style_blend=style_blend)
