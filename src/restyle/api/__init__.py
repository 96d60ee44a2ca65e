"""The Python API, and the only entry points the front-ends (CLI, server) call.

>>> import restyle
>>> result = restyle.stylize("photo.jpg", ["painting.jpg"], size=256)
>>> restyle.score("out.png", "photo.jpg", "painting.jpg").as_dict()

By domain: single runs (:mod:`._run`), studies (:mod:`._study`), batches (:mod:`._batch`),
videos (:mod:`._video`), fast models (:mod:`._train`, :mod:`._export`, :mod:`._models`), and helpers for
network front-ends (:mod:`._web`).
"""

from __future__ import annotations

from restyle.api._batch import plan_batch, ray_executor, run_batch
from restyle.api._export import export_fast_model
from restyle.api._models import FastModelInfo, fast_models
from restyle.api._run import (
    changed_inputs,
    describe_evaluator,
    format_scores,
    read_run_record,
    score,
    stylize,
)
from restyle.api._study import build_grid, preset_grid, run_study
from restyle.api._train import train_fast_model
from restyle.api._video import score_video, stylize_video
from restyle.api._web import (
    available_cpus,
    available_devices,
    check_image,
    encode_image,
    example_images,
    loss_history_csv,
)
from restyle.batch import BatchEvent, BatchItem, BatchStarted, BatchSummary, ItemFinished, ItemResult
from restyle.config import Config
from restyle.engine import Result
from restyle.engine.events import Event, EventHandler, Finished, FinishNow, Progress, Started
from restyle.engine.events import as_dict as event_dict
from restyle.methods import Method, method_for
from restyle.metrics import Scores
from restyle.nn.network import Backbone, LayerInfo
from restyle.study import Cell, StudySummary
from restyle.train import TrainEvent, TrainFinished, TrainProgress, TrainSample, TrainStarted
from restyle.video.events import FrameFinished, FrameStarted, VideoFinished, VideoStarted

__all__ = [
    # runs
    "Config", "Result", "stylize", "score", "Scores", "read_run_record", "changed_inputs", "describe_evaluator",
    "format_scores",
    # events
    "Event", "EventHandler", "Started", "Progress", "Finished", "FinishNow", "event_dict",
    # seams
    "Method", "method_for", "Backbone", "LayerInfo",
    # studies
    "Cell", "StudySummary", "build_grid", "preset_grid", "run_study",
    # batches
    "BatchEvent", "BatchItem", "BatchStarted", "BatchSummary", "ItemFinished", "ItemResult", "plan_batch",
    "run_batch", "ray_executor",
    # videos
    "FrameFinished", "FrameStarted", "VideoFinished", "VideoStarted", "stylize_video", "score_video",
    # fast models
    "train_fast_model", "TrainEvent", "TrainStarted", "TrainProgress", "TrainSample", "TrainFinished",
    "export_fast_model",
    # network front-ends
    "available_cpus", "available_devices", "check_image", "encode_image", "example_images", "loss_history_csv",
    "FastModelInfo", "fast_models",
]
