"""The Python API, and the only entry points the front-ends (CLI, server) call.

>>> import restyle
>>> result = restyle.stylize("photo.jpg", ["painting.jpg"], size=256)
>>> restyle.score("out.png", "photo.jpg", "painting.jpg").as_dict()

By domain: single runs (:mod:`._run`), studies (:mod:`._study`), batches (:mod:`._batch`),
videos (:mod:`._video`), fast models (:mod:`._train`, :mod:`._export`, :mod:`._models`), and helpers for
network front-ends (:mod:`._web`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restyle._lazy import lazy_getattr

#: public name -> module that defines it (imported on first use: the CLI builds its parsers without torch)
_EXPORTS = {
    "plan_batch": "restyle.api._batch",
    "ray_executor": "restyle.api._batch",
    "run_batch": "restyle.api._batch",
    "export_fast_model": "restyle.api._export",
    "FastModelInfo": "restyle.api._models",
    "fast_models": "restyle.api._models",
    "model_names": "restyle.api._models",
    "changed_inputs": "restyle.api._run",
    "describe_evaluator": "restyle.api._run",
    "format_scores": "restyle.api._run",
    "read_run_record": "restyle.api._run",
    "score": "restyle.api._run",
    "stylize": "restyle.api._run",
    "build_grid": "restyle.api._study",
    "preset_grid": "restyle.api._study",
    "run_study": "restyle.api._study",
    "train_fast_model": "restyle.api._train",
    "score_video": "restyle.api._video",
    "stylize_video": "restyle.api._video",
    "available_cpus": "restyle.api._web",
    "available_devices": "restyle.api._web",
    "check_image": "restyle.api._web",
    "encode_image": "restyle.api._web",
    "example_images": "restyle.api._web",
    "header_size": "restyle.io.files",
    "loss_history_csv": "restyle.api._web",
    "BatchEvent": "restyle.batch",
    "BatchItem": "restyle.batch",
    "BatchStarted": "restyle.batch",
    "BatchSummary": "restyle.batch",
    "ItemFinished": "restyle.batch",
    "ItemResult": "restyle.batch",
    "Config": "restyle.config",
    "Result": "restyle.engine",
    "Event": "restyle.engine.events",
    "EventHandler": "restyle.engine.events",
    "Finished": "restyle.engine.events",
    "FinishNow": "restyle.engine.events",
    "finished_on_request": "restyle.engine.stopping",
    "Progress": "restyle.engine.events",
    "Started": "restyle.engine.events",
    "Method": "restyle.methods",
    "MethodOption": "restyle.methods",
    "listed_fields": "restyle.methods",
    "method_for": "restyle.methods",
    "method_name": "restyle.methods",
    "method_options": "restyle.methods",
    "methods": "restyle.methods",
    "owned_fields": "restyle.methods",
    "Scores": "restyle.metrics",
    "Backbone": "restyle.nn.network",
    "LayerInfo": "restyle.nn.network",
    "Cell": "restyle.study",
    "StudySummary": "restyle.study",
    "TrainEvent": "restyle.train",
    "TrainFinished": "restyle.train",
    "TrainProgress": "restyle.train",
    "TrainSample": "restyle.train",
    "TrainStarted": "restyle.train",
    "FrameFinished": "restyle.video.events",
    "FrameStarted": "restyle.video.events",
    "VideoFinished": "restyle.video.events",
    "VideoStarted": "restyle.video.events",
}

__all__ = [
    # runs
    "Config", "Result", "stylize", "score", "Scores", "read_run_record", "changed_inputs", "describe_evaluator",
    "format_scores",
    # events
    "Event", "EventHandler", "Started", "Progress", "Finished", "FinishNow", "finished_on_request", "event_dict",
    # seams
    "Method", "MethodOption", "method_for", "method_name", "method_options", "methods", "owned_fields", "listed_fields", "Backbone", "LayerInfo",
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
    "available_cpus", "available_devices", "check_image", "encode_image", "example_images", "header_size",
    "loss_history_csv", "FastModelInfo", "fast_models", "model_names",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)


def event_dict(event: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict (:func:`restyle.engine.events.as_dict`)."""
    from restyle.engine.events import as_dict

    return as_dict(event)


if TYPE_CHECKING:
    from restyle.api._batch import plan_batch, ray_executor, run_batch
    from restyle.api._export import export_fast_model
    from restyle.api._models import FastModelInfo, fast_models, model_names
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
    from restyle.methods import (
        Method,
        MethodOption,
        listed_fields,
        method_for,
        method_name,
        method_options,
        methods,
        owned_fields,
    )
    from restyle.metrics import Scores
    from restyle.nn.network import Backbone, LayerInfo
    from restyle.study import Cell, StudySummary
    from restyle.train import TrainEvent, TrainFinished, TrainProgress, TrainSample, TrainStarted
    from restyle.video.events import FrameFinished, FrameStarted, VideoFinished, VideoStarted
