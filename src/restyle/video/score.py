"""Scoring a stylised video: the temporal warping error (how much each output frame differs
from the previous output frame warped to it by the input's optical flow, where the flow is
reliable; Lai et al. 2018), beside the input's own (the part the flow does not explain), and
the means over frames of the per-frame metrics of :mod:`restyle.metrics`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from restyle.errors import ConfigError
from restyle.io import images
from restyle.metrics import METRIC_NAMES, Evaluator
from restyle.video import flow, sink, source


@dataclass
class VideoScores:
    """``warping_error``: mean over consecutive frame pairs of the masked mean squared difference
    (pixels in [0, 1]); ``input_warping_error``: the same of the input frames; ``metrics``: the
    per-frame metrics' means (the style ones only when a style image is known)."""

    frames: int
    warping_error: float
    input_warping_error: float
    metrics: dict[str, float]
    per_pair: list[float] = field(default_factory=list)
    content: str = ""
    styles: list[str] = field(default_factory=list)
    evaluator: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "warping_error": self.warping_error,
                "input_warping_error": self.input_warping_error, **self.metrics}


def score_video(output: str | os.PathLike[str], content: str | os.PathLike[str] | None = None,
                styles: Sequence[str | os.PathLike[str]] | None = None, *,
                style_blend: Sequence[float] | None = None, evaluator: Evaluator | None = None,
                flow_preset: str = flow.DEFAULT_PRESET) -> VideoScores:
    """Score the video ``output`` against the input video ``content`` (default: the input its
    record names; the frames and rate it was made from are taken from the record too)."""
    record = sink.read_record(output)
    recorded = (record or {}).get("inputs", {})
    if content is None:
        content = recorded.get("video")
        if content is None:
            raise ConfigError(f"'{output}' carries no restyle record naming its input; give --content")
    if styles is None and recorded.get("styles"):
        styles = list(recorded["styles"])
        style_blend = (record or {}).get("config", {}).get("style_blend")
    out_info = source.probe(output)
    in_info = source.probe(content)
    indices = list(range(in_info.frames))
    same_input = record is not None and recorded.get("video") is not None and \
        os.path.realpath(recorded["video"]) == os.path.realpath(content)
    if same_input:
        assert record is not None
        a, b = record["video"]["source_frames"]
        indices, _ = source.select(in_info, f"{a}:{b}", record["video"].get("fps"))
    if len(indices) != out_info.frames:
        raise ConfigError(f"'{output}' has {out_info.frames} frames and '{content}' {len(indices)}; give the "
                          "input the output was made from")
    estimator = flow.FlowEstimator(flow_preset)
    ev = evaluator or Evaluator()
    style_list = list(styles) if styles else None
    per_pair: list[float] = []
    input_pairs: list[float] = []
    sums: dict[str, float] = {}
    previous: tuple[np.ndarray, np.ndarray] | None = None
    pairs = zip(source.read_frames(out_info, list(range(out_info.frames))), source.read_frames(in_info, indices))
    for (_, out), (_, inp) in pairs:
        inp = images.resize_to(inp, out.size) if inp.size != out.size else inp
        a_out, a_in = _array(out), _array(inp)
        if previous is not None:
            link = flow.pair(estimator, previous[1], a_in)
            per_pair.append(flow.warping_error(previous[0], a_out, link))
            input_pairs.append(flow.warping_error(previous[1], a_in, link))
        previous = (a_out, a_in)
        for k, v in _metrics(ev, out, inp, style_list, style_blend).items():
            sums[k] = sums.get(k, 0.0) + v
    count = out_info.frames
    metrics = {k: sums[k] / count for k in METRIC_NAMES if k in sums}
    return VideoScores(count, _mean(per_pair), _mean(input_pairs), metrics, per_pair, str(content),
                       [str(s) for s in styles or []], ev.describe())


def _metrics(ev: Evaluator, out: Any, inp: Any, styles: list[Any] | None,
             blend: Sequence[float] | None) -> dict[str, float]:
    if styles:
        values = ev.score(out, inp, styles, style_blend=blend).as_dict()
        return {k: float(values[k]) for k in METRIC_NAMES if k in values}
    return {"content_distance": ev.content_distance(out, inp), "ssim": ev.ssim(out, inp), "tv": ev.total_variation(out)}


def _array(img: Any) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
