"""Video: stylise a clip frame by frame with temporal consistency (Ruder, Dosovitskiy & Brox 2016),
and score a stylised clip's flicker.

- :mod:`.source` reads any video PyAV decodes, a GIF or a folder of numbered frames;
- :mod:`.flow` computes DIS optical flow both ways, the reliability masks, warps and the warping error;
- :mod:`.stylize` runs the engine once per frame (start: the previous stylised frame, warped; one
  more loss term: closeness to it where the flow is reliable), keeping finished frames in a
  resumable work folder (:mod:`.work`);
- :mod:`.sink` writes an H.264 video with the input's audio, a GIF or PNG frames;
- :mod:`.score` measures the warping error and the per-frame metrics' means.

PyAV and OpenCV (the ``restyle[video]`` extra) are imported when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr

_EXPORTS = {
    "DEFAULT_TEMPORAL_WEIGHT": "restyle.video.defaults", "VideoOptions": "restyle.video.stylize",
    "VideoResult": "restyle.video.stylize", "stylize_video": "restyle.video.stylize",
    "VideoScores": "restyle.video.score", "score_video": "restyle.video.score",
    "InputVideoError": "restyle.video.source",
}

__all__ = ["DEFAULT_TEMPORAL_WEIGHT", "InputVideoError", "VideoOptions", "VideoResult", "VideoScores",
           "score_video", "stylize_video"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from restyle.video.defaults import DEFAULT_TEMPORAL_WEIGHT
    from restyle.video.score import VideoScores, score_video
    from restyle.video.source import InputVideoError
    from restyle.video.stylize import VideoOptions, VideoResult, stylize_video
