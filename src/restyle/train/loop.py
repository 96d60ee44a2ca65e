"""Training a fast model: Adam on the transformation network against :class:`TrainObjective`,
over random crops of a photo folder, with checkpoints, ``resume``, and sample sheets of held-back
photos. Emits typed events (:mod:`restyle.train.events`); writes only the model file, its
checkpoint (``NAME.ckpt.pt``) and the sample sheets (``NAME.samples/stepNNNNN.png``)."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from restyle.backbone import cached_backbone
from restyle.config import Config
from restyle.engine.backend import resolve_device, resolve_precision, weights_dtype
from restyle.engine.objective import Features
from restyle.errors import ConfigError
from restyle.io import images
from restyle.methods.fastmodel import FastModel, encode_png, read_model, save_model
from restyle.nn.transformer import NetShape, TransformerNet
from restyle.train.events import TrainEvent, TrainFinished, TrainProgress, TrainSample, TrainStarted
from restyle.train.objective import TrainObjective
from restyle.train.photos import PhotoSet, load_photos


@dataclass(frozen=True)
class TrainOptions:
    """How to train (the losses, layers, crop size and style size come from the :class:`Config`:
    ``size`` is the crop's side, ``style_scale`` sizes the paintings relative to it)."""

    steps: int = 2000
    batch: int = 4
    lr: float = 1e-3
    every: int = 200  # checkpoint and sample sheet every N steps (0: only at the end)
    held_out: int = 4
    seed: int = 0
    photo_side: int = 768  # photos are held in memory at most this long (crops are rescaled from them)

    def check(self) -> None:
        for name in ("steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1")
        if not (0 < self.lr < 1):
            raise ConfigError(f"--lr must be between 0 and 1 for training, got {self.lr}")
        if self.every < 0 or self.held_out < 0:
            raise ConfigError("--every and --held-out must be >= 0")


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.stem + ".ckpt.pt")


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class _Start:
    """Where a training starts: another model's parameters (``init_from``), or a checkpoint's
    state (``resume``: the model, the optimiser's and the RNG's state, the step), or afresh."""

    init: FastModel | None = None
    saved: FastModel | None = None
    state: dict[str, Any] | None = None
    step: int = 0


@dataclass
class _Training:
    """What the steps of a training share: the network, its optimiser, the crops' RNG, the
    objective and photos, and where and what it writes."""

    net: TransformerNet
    optim: torch.optim.Adam
    rng: random.Random
    objective: TrainObjective
    photos: PhotoSet
    device: torch.device
    crop: int
    options: TrainOptions
    record: dict[str, Any]
    output: Path
    emit: Callable[[TrainEvent], None]

    def step(self, step: int) -> tuple[float, dict[str, float]]:
        """One Adam step on a batch of crops: (the loss, its terms)."""
        o, n_styles = self.options, self.net.shape.styles
        x = self.photos.crops(o.batch, self.crop, self.rng).to(self.device)
        index = [(step * o.batch + b) % n_styles for b in range(o.batch)]
        blend = torch.nn.functional.one_hot(torch.tensor(index), n_styles).float().to(self.device)
        y = self.net(x, blend)
        loss, content, style, tv = self.objective(x, y, index)
        if not torch.isfinite(loss):
            raise ConfigError(f"training diverged at step {step + 1} (loss {float(loss)}); try a smaller --lr")
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return loss.item(), {"content": content.item(), "style": style.item(), "tv": tv.item()}

    def checkpoint(self, done: int, seconds: float, loss_avg: float) -> None:
        """Write the checkpoint after ``done`` steps and the held-back photos' sample sheet."""
        self.net.eval()
        self.record.update(steps=done, seconds=round(seconds, 1), loss=round(loss_avg, 6))
        train_state = {"step": done, "optim": self.optim.state_dict(), "rng": _rng_list(self.rng.getstate()),
                       "seconds": seconds}
        save_model(checkpoint_path(self.output), self.net, self.record, train=train_state)
        if self.photos.held:
            sheet = sample_sheet(self.net, self.photos.held, self.device, self.crop)
            path = self.output.with_name(self.output.stem + ".samples") / f"step{done:05d}.png"
            path.parent.mkdir(exist_ok=True)
            sheet.save(path)
            self.emit(TrainSample(done, str(path)))
        self.net.train()


def train(styles: Sequence[str | Path], photos: str | Path, output: str | Path, config: Config,
          shape: NetShape, options: TrainOptions, *, resume: bool = False, init_from: str | Path | None = None,
          on_event: Callable[[TrainEvent], None] | None = None, exclude: Sequence[str | Path] = ()) -> FastModel:
    """Train a network for ``styles`` on the photos under ``photos`` (less ``exclude``) and write it to ``output``.
    ``resume`` continues from ``output``'s checkpoint (same styles, shape and options);
    ``init_from`` starts from another model's parameters (same shape and number of styles), e.g.
    to fine-tune a model with other weights or photos."""
    options.check()
    output = Path(output)
    _check_request(output, styles)
    emit = on_event or (lambda e: None)
    crop = int(config.size or 256)
    style_imgs = _style_images(styles, config, crop)
    shape = NetShape(shape.width, shape.blocks, shape.kernel, len(style_imgs))
    record: dict[str, Any] = {
        "styles": [{"name": Path(s).stem, "sha256": sha256(s), "png": encode_png(img)}
                   for s, img in zip(styles, style_imgs)],
        "config": config.to_dict(), "options": options.__dict__, "shape": shape.as_dict(),
    }
    begin = _start(output, shape, record, resume, init_from)
    photo_set = load_photos(photos, held_out=options.held_out, longest=options.photo_side,
                            max_pixels=config.max_pixels, exclude=[*styles, *exclude])
    run = _setup(config, shape, options, style_imgs, photo_set, begin, crop, record, output, emit)
    record.update(photos=len(photo_set.train), held_out=photo_set.held_names, skipped=len(photo_set.skipped))
    emit(TrainStarted(options.steps, begin.step, len(photo_set.train), len(photo_set.held), len(photo_set.skipped),
                      tuple(s["name"] for s in record["styles"]), str(run.device), _precision(config, run.device)))
    seconds0 = float((begin.state or {}).get("seconds", 0.0))
    t0, loss_avg = time.perf_counter(), math.nan
    run.net.train()
    for step in range(begin.step, options.steps):
        value, terms = run.step(step)
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        seconds = seconds0 + time.perf_counter() - t0
        done = step + 1
        rate = (time.perf_counter() - t0) / (done - begin.step)
        emit(TrainProgress(done, options.steps, {"total": value, **terms, "smoothed": loss_avg}, seconds,
                           rate * (options.steps - done)))
        if (options.every and done % options.every == 0) or done == options.steps:
            run.checkpoint(done, seconds, loss_avg)
    run.net.eval()
    save_model(output, run.net, record)
    emit(TrainFinished(options.steps, loss_avg, seconds0 + time.perf_counter() - t0, str(output)))
    return read_model(output)


def _check_request(output: Path, styles: Sequence[str | Path]) -> None:
    if output.suffix != ".pt":
        raise ConfigError(f"the model file must end in .pt, got '{output}'")
    if not output.parent.is_dir():
        raise ConfigError(f"the folder of '{output}' does not exist")
    if not styles:
        raise ConfigError("give at least one style image")


def _style_images(styles: Sequence[str | Path], config: Config, crop: int) -> list[Image.Image]:
    """The paintings, their longest side ``style_scale`` times the crop's."""
    style_imgs = [images.load_image(s, max_pixels=config.max_pixels, role=f"style image {i + 1}")
                  for i, s in enumerate(styles)]
    style_side = max(16, round(crop * config.style_scale))
    return [images.resize_longest(s, style_side) for s in style_imgs]


def _start(output: Path, shape: NetShape, record: dict[str, Any], resume: bool,
           init_from: str | Path | None) -> _Start:
    """Where the training starts (``init_from`` noted in ``record``); refuses a model or checkpoint
    that does not fit."""
    begin = _Start()
    ckpt = checkpoint_path(output)
    if init_from is not None:
        if resume:
            raise ConfigError("give either --resume or --init-from, not both")
        begin.init = read_model(init_from)
        if begin.init.net.shape != shape:
            raise ConfigError(f"--init-from '{init_from}' has shape {begin.init.net.shape.as_dict()}; this "
                              f"training's is {shape.as_dict()}")
        record["init_from"] = {"file": Path(init_from).name, "sha256": sha256(init_from),
                               "steps": begin.init.record.get("steps")}
    if resume:
        if not ckpt.is_file():
            raise ConfigError(f"--resume: no checkpoint '{ckpt}' to resume from")
        saved = read_model(ckpt)
        for key in ("styles", "config", "options", "shape"):  # --steps may change: train on for longer
            if _comparable(saved.record.get(key)) != _comparable(record[key]):
                raise ConfigError(f"--resume: the checkpoint '{ckpt}' was trained with other {key}; "
                                  "give the same styles and options, or train afresh without --resume")
        begin.saved, begin.state, begin.step = saved, saved.train, int((saved.train or {}).get("step", 0))
    return begin


def _precision(config: Config, device: torch.device) -> str:
    precision = resolve_precision(config.precision, device)
    return "fp32" if precision == "tf32" and device.type == "cpu" else precision


def _setup(config: Config, shape: NetShape, options: TrainOptions, style_imgs: Sequence[Image.Image],
           photo_set: PhotoSet, begin: _Start, crop: int, record: dict[str, Any], output: Path,
           emit: Callable[[TrainEvent], None]) -> _Training:
    """The network (seeded, or from ``begin``), its optimiser, the crops' RNG and the objective."""
    device = resolve_device(config.device)
    precision = _precision(config, device)
    backbone = cached_backbone(config.model, config.weights, config.pooling, device, weights_dtype(precision))
    features = Features(backbone, device, precision)
    objective = TrainObjective(config, features, [images.to_tensor(s) for s in style_imgs])
    torch.manual_seed(options.seed)
    net = TransformerNet(shape).to(device)
    optim = torch.optim.Adam(net.parameters(), lr=options.lr)
    rng = random.Random(options.seed)
    if begin.init is not None:
        net.load_state_dict(begin.init.net.state_dict())
    if begin.state is not None:
        assert begin.saved is not None
        net.load_state_dict(begin.saved.net.state_dict())
        optim.load_state_dict(begin.state["optim"])
        rng.setstate(_rng_state(begin.state["rng"]))
    return _Training(net, optim, rng, objective, photo_set, device, crop, options, record, output, emit)


def sample_sheet(net: TransformerNet, photos: Sequence[Image.Image], device: torch.device, side: int) -> Image.Image:
    """Each held-back photo (longest side ``side``) above the network's picture of it, per style."""
    tiles: list[list[Image.Image]] = []
    styles = net.shape.styles
    with torch.inference_mode():
        for photo in photos:
            img = images.resize_longest(photo, side)
            x = images.to_tensor(img).to(device)
            col = [img] + [images.to_image(net(x, torch.nn.functional.one_hot(torch.tensor([s]), styles).float()
                                                .to(device)).cpu()) for s in range(styles)]
            tiles.append(col)
    width = sum(max(t.width for t in col) for col in tiles)
    height = max(sum(t.height for t in col) for col in tiles)
    sheet = Image.new("RGB", (width, height), "white")
    left = 0
    for col in tiles:
        top = 0
        for t in col:
            sheet.paste(t, (left, top))
            top += t.height
        left += max(t.width for t in col)
    return sheet


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in ("png", "steps")}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _rng_list(state: tuple[Any, ...]) -> list[Any]:
    """``random.Random.getstate()`` as plain lists/ints (a weights-only torch file takes no tuples of tuples)."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state(saved: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
