"""The style-transfer task that batches and studies hand to an executor, and the check that an
output is already done (resuming).

A task (:func:`make_task`) is a plain dict, typed by :class:`~restyle.executors.base.Task`: ``config`` (a Config dict), ``content`` and ``styles``
(paths as the user gave them), ``pixels`` (send back the float pixels, for 16-bit TIFF outputs)
and, when the executor's workers may not see this machine's files, ``files``: every input file
of the run (content, styles, masks, style masks, label image, init image) as bytes, keyed by its
path. A worker (:func:`run_task`) writes those to a private temporary folder, runs there, and
reports paths and messages under their original names, so an error reads exactly as ``restyle
run`` would print it.

The outcome (:class:`~restyle.executors.base.Outcome`) carries the output back: ``image`` (HxWx3 uint8), ``pixels`` (HxWx3 float32 or None),
``history``, ``model``, ``notes``, ``device``, ``precision``, ``stopped_early``, ``seconds`` (wall
time on the worker), ``pid`` and ``backbone_loads`` (backbones this worker process has built so
far), and ``error`` (empty); or only ``error``. The caller writes the files (:func:`save_output`)
where it runs, atomically, with the run record naming its own paths.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restyle.config import Config
from restyle.errors import InputImageError, RestyleError, out_of_memory
from restyle.executors.base import Outcome, Task, error_outcome

#: Config fields that say how a run is placed, not what it computes: a saved output matches without them.
RUN_ONLY_FIELDS = ("device", "preset")


# ---- the task, on the caller's side --------------------------------------------------------


def make_task(config: Config, content: str, styles: Sequence[str], *, ship: bool, pixels: bool = False) -> Task:
    """The task for one output. ``ship``: put the input files' bytes in it (for workers that may
    not share this file system). An input that cannot be read raises the loader's one-line
    :class:`InputImageError` (``content image 'x.jpg': not found``)."""
    from restyle.methods import run_inputs

    task: Task = {"config": config.to_dict(), "content": str(content), "styles": [str(s) for s in styles],
                  "pixels": pixels}
    if ship:
        task["files"] = {path: _read(path, role) for role, path in run_inputs(str(content), task["styles"], config)}
    return task


def _read(path: str, role: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError:
        from restyle.io import images

        images.load_image(path, role=role)  # raises the same message a run would
        raise InputImageError(f"{role} '{path}': cannot be read") from None


# ---- the task, on the worker's side --------------------------------------------------------


@dataclass
class Inputs:
    """A task's inputs where this worker can read them."""

    config: Config
    content: str
    styles: list[str]
    local: dict[str, str] = field(default_factory=dict)  # the task's path -> the temporary copy

    def restore(self, text: str) -> str:
        """``text`` with the temporary copies' paths put back to the task's."""
        for given, local in self.local.items():
            text = text.replace(local, given)
        return text


@contextmanager
def task_inputs(task: Task) -> Iterator[Inputs]:
    """The task's config and inputs: its paths as they are, or temporary copies of the files it
    carries (removed afterwards), with the config's file options pointed at them."""
    config = Config.from_dict(task["config"])
    files: Mapping[str, bytes] | None = task.get("files")
    if not files:
        yield Inputs(config, task["content"], list(task["styles"]))
        return
    with tempfile.TemporaryDirectory(prefix="restyle-task-") as tmp:
        local: dict[str, str] = {}
        for i, (given, data) in enumerate(files.items()):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            copy = folder / (Path(given).name or "input")
            copy.write_bytes(data)
            local[given] = str(copy)

        def here(p: Any) -> Any:
            return local.get(str(p), p) if isinstance(p, (str, os.PathLike)) else p

        yield Inputs(localised(config, here), here(task["content"]), [here(s) for s in task["styles"]], local)


def localised(config: Config, here: Callable[[Any], Any]) -> Config:
    """``config`` with every file option's value (:attr:`restyle.config.Option.file`, and the
    method's own file options) passed through ``here``; words and bundled names pass unchanged."""
    from restyle.config import options
    from restyle.methods import method_for

    changes: dict[str, Any] = {}
    for name, opt in options().items():
        value = getattr(config, name)
        if opt.file and value is not None:
            changes[name] = [here(v) for v in value] if isinstance(value, list) else here(value)
    own = {o.name for o in method_for(config).options if o.file}
    if own & set(config.method_options):
        changes["method_options"] = {k: here(v) if k in own else v for k, v in config.method_options.items()}
    return config.replace(**changes) if changes else config



def result_outcome(result: Any, start: float, inputs: Inputs, *, pixels: bool = False) -> Outcome:
    """The outcome that carries a finished run's output back (see the module docstring)."""
    import numpy as np

    from restyle.backbone import cached_backbone

    floats = None
    if pixels and result.pixels is not None:
        floats = result.pixels.detach()[0].permute(1, 2, 0).float().cpu().numpy()
    return {
        "error": "", "image": np.asarray(result.image.convert("RGB"), dtype=np.uint8), "pixels": floats,
        "history": result.history, "model": result.config.model, "notes": [inputs.restore(n) for n in result.notes],
        "device": result.device, "precision": result.precision,
        "stopped_early": inputs.restore(result.stopped_early) if result.stopped_early else None,
        "stop_reason": result.stop_reason,
        "seconds": time.perf_counter() - start, "pid": os.getpid(),
        "backbone_loads": cached_backbone.cache_info().misses,
    }


def failure_outcome(err: BaseException, inputs: Inputs | None = None) -> Outcome:
    """The one-line error outcome of a failed run, worded as ``restyle run`` words it."""
    memory = out_of_memory(err)
    if memory is not None:
        if not isinstance(err, MemoryError):  # torch.OutOfMemoryError: free what it held for the next task
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return {"error": memory}
    outcome = error_outcome(err)
    if inputs is not None:
        outcome["error"] = inputs.restore(outcome["error"])
    return outcome


def run_task(task: Task) -> Outcome:
    """Run one output's style transfer (in this process or a worker): the task function of a batch."""
    from restyle.methods import method_for

    start = time.perf_counter()
    try:
        with task_inputs(task) as inputs:
            try:
                result = method_for(inputs.config).run(inputs.content, inputs.styles, inputs.config)
                return result_outcome(result, start, inputs, pixels=bool(task.get("pixels")))
            except Exception as err:  # noqa: BLE001 - one failed output must not end the others; it is reported
                return failure_outcome(err, inputs)
    except Exception as err:  # noqa: BLE001 - e.g. no room for the temporary copies
        return failure_outcome(err)


# ---- the output, on the caller's side ------------------------------------------------------


@dataclass
class Returned:
    """A finished run as an outcome brings it back (a :class:`restyle.io.record.RunOutput`)."""

    image: Any
    history: list[dict[str, float]]
    config: Config
    notes: list[str]
    device: str
    precision: str
    pixels: Any = None
    stop_reason: str = ""

    @property
    def final_loss(self) -> float:
        return self.history[-1]["total"] if self.history else float("nan")


def returned(outcome: Outcome, config: Config) -> Returned:
    """The run an outcome carries, with ``config`` (the caller's, so paths are its own) on the model it ran."""
    from PIL import Image

    pixels = outcome.get("pixels")
    if pixels is not None:
        import torch

        pixels = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    return Returned(Image.fromarray(outcome["image"], "RGB"), outcome["history"],
                    config.replace(model=outcome["model"]), list(outcome["notes"]), outcome["device"],
                    outcome["precision"], pixels, outcome.get("stop_reason", ""))


def save_output(outcome: Outcome, config: Config, output: str | Path, content: str, styles: Sequence[str], *,
                quality: int | None = None, plot: bool = False) -> dict[str, Path]:
    """Write the output an outcome carries (image with its run record, loss CSV, optionally the
    plot), atomically, here; the paths written."""
    from restyle.io.record import save_result
    from restyle.methods import option_files

    files = option_files(config)
    return save_result(returned(outcome, config), output, content, list(styles), plot=plot, quality=quality,
                       files=files)


# ---- resuming ------------------------------------------------------------------------------


def expected_model(config: Config) -> str:
    """The model a run uses: vgg19 when it asks for vgg16 with fallback and VGG16 is absent."""
    from restyle.weights import vgg16_available

    if config.model == "vgg16" and config.weights is None and config.fallback_vgg19 and not vgg16_available():
        return "vgg19"
    return config.model


def comparable(config: Mapping[str, Any], ignore: Sequence[str] = RUN_ONLY_FIELDS) -> dict[str, Any]:
    """A config dict normalised for comparison, without the fields in ``ignore``."""
    d = Config.from_dict(config).to_dict()
    for k in ignore:
        d.pop(k, None)
    return d


def finished_record(output: str | Path, config: Config, content: str, styles: Sequence[str], *,
                    ignore: Sequence[str] = RUN_ONLY_FIELDS,
                    digest: Callable[[str | None], str | None] | None = None) -> dict[str, Any] | None:
    """The run record of ``output`` when it is a finished output of this run (same config but for
    ``ignore``, on the model it would use now; same content and style files, by path and
    SHA-256; its loss CSV beside it), else None. ``digest``: the file hasher (pass a cached one
    when many outputs share inputs)."""
    from restyle.io.record import describe_input, file_digest, read_run_record, side_paths

    out = Path(output)
    from restyle.methods import method_for, option_files

    if not out.is_file() or (method_for(config).iterative(config) and not side_paths(out)["csv"].is_file()):
        return None  # (a one-pass method writes no loss CSV)
    try:
        record = read_run_record(out)
        saved = comparable(record["config"], ignore)
    except (RestyleError, KeyError, TypeError, ValueError):
        return None
    if saved != comparable({**config.to_dict(), "model": expected_model(config)}, ignore):
        return None
    inputs = record.get("inputs", {})
    content_path, style_paths = describe_input(content), [describe_input(s) for s in styles]
    if inputs.get("content") != content_path or inputs.get("styles") != style_paths:
        return None
    digests = inputs.get("sha256", {})
    hasher = digest or file_digest
    named = [describe_input(p) for _, p in option_files(config) if Path(p).is_file()]
    if any(digests.get(p) != hasher(p) for p in (content_path, *style_paths, *named)):
        return None
    return record

