"""Batches: many outputs, each content × style (or a manifest row), made in this process, in
local processes or on a Ray cluster, resumed where an earlier run stopped.

    restyle batch photos/ --styles a.jpg b.jpg -o out/ --size 512
    restyle batch --manifest jobs.csv -o out/ --ray

:mod:`.inputs` plans the outputs (inputs, manifests, names); :mod:`.runner` runs them through an
executor (:mod:`restyle.executors`), writes them and the summary ``OUT_DIR/batch.csv``. Names
load on first use: ``restyle batch --help`` needs neither torch nor Ray.

>>> from restyle.batch import plan, run_batch
>>> items = plan(["photos/"], ["a.jpg", "b.jpg"], "out", options={"size": 256, "iterations": 100})
>>> summary = run_batch(items, "out", jobs=2)
>>> [r.status for r in summary.results]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restyle._lazy import lazy_getattr

_EXPORTS = {
    "BatchItem": "restyle.batch.inputs", "IMAGE_SUFFIXES": "restyle.batch.inputs", "FORMATS": "restyle.batch.inputs",
    "expand": "restyle.batch.inputs", "plan": "restyle.batch.inputs", "read_manifest": "restyle.batch.inputs",
    "BatchEvent": "restyle.batch.runner", "BatchStarted": "restyle.batch.runner", "BatchSummary": "restyle.batch.runner",
    "ItemFinished": "restyle.batch.runner", "ItemResult": "restyle.batch.runner", "run_batch": "restyle.batch.runner",
}

__all__ = ["FORMATS", "IMAGE_SUFFIXES", "BatchEvent", "BatchItem", "BatchStarted", "BatchSummary", "ItemFinished",
           "ItemResult", "expand", "plan", "read_manifest", "run_batch"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from restyle.batch.inputs import FORMATS, IMAGE_SUFFIXES, BatchItem, expand, plan, read_manifest
    from restyle.batch.runner import (
        BatchEvent,
        BatchStarted,
        BatchSummary,
        ItemFinished,
        ItemResult,
        run_batch,
    )
