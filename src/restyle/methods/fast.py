"""The fast method: a trained feed-forward network (``restyle train``) stylises a photo in one
forward pass (Johnson et al. 2016), optionally refined by the optimiser (``--refine N``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from restyle.config import Config
from restyle.engine import Result
from restyle.engine.backend import resolve_device
from restyle.engine.events import EventHandler, Finished, Started
from restyle.errors import ConfigError
from restyle.io import images
from restyle.methods.base import IterationHandler
from restyle.methods.fastmodel import FastModel, check_blend, load_model
from restyle.methods.optimise import Optimisation
from restyle.nn import controls


def model_name(config: Config) -> str:
    if config.fast_model is None:
        raise ConfigError("the fast method needs --fast-model")
    return config.fast_model


def stylise(model: FastModel, content: torch.Tensor, blend: torch.Tensor, preserve_color: str | None = None,
            photo_filter: bool = False) -> torch.Tensor:
    """The network's picture of ``content`` (``1 x 3 x H x W`` in [0, 1], on the model's device),
    with the colour controls applied after it: luminance keeps the content's chroma (Gatys et al.
    2017), histogram recolours the output to the content's colour statistics."""
    with torch.inference_mode():
        out = model.net(content, blend.to(content.device))
        return colour_controls(out, content, preserve_color, photo_filter)


def colour_controls(out: torch.Tensor, content: torch.Tensor, preserve_color: str | None,
                    photo_filter: bool) -> torch.Tensor:
    """``out`` with the colour controls of :func:`stylise` applied, clamped to [0, 1]."""
    with torch.inference_mode():
        if preserve_color == "luminance":
            out = controls.recombine_luminance(controls.luminance(out), content)
        elif preserve_color == "histogram":
            out = controls.match_color(out, content)
        if photo_filter:
            out = controls.guided_filter(content, out)
    return out.clamp(0, 1)


def run_onnx(name: str, content: Any, config: Config, on_event: EventHandler | None) -> Result:
    """A model exported to ONNX (``restyle export``), run on the CPU by onnxruntime
    (:mod:`restyle.fastonnx`), with the same events and result as a ``.pt`` model. ``--refine``
    needs the paintings, which only the ``.pt`` file stores."""
    from restyle import fastonnx

    if config.refine:
        raise ConfigError(f"--refine needs the paintings a .pt fast model stores; '{name}' is an ONNX export "
                          "without them: give the .pt model")
    model = fastonnx.load(name)
    weights = model.weights(config.style_blend)
    img = content_image(content, config)
    x = images.to_tensor(img)
    notes = [f"fast model {name} (onnxruntime {model.precision}): {describe(model.styles, weights.tolist())}"]

    def forward() -> torch.Tensor:
        out = torch.from_numpy(model.forward(x.numpy(), weights.tolist()))
        return colour_controls(out, x, config.preserve_color, config.photo_filter)

    return one_pass(name, img, config, on_event, "cpu", model.precision, notes, forward)


def content_image(content: Any, config: Config) -> Any:
    """The content image as loaded (its one-line errors), checked against the pixel cap and resized."""
    img = images.load_image(content, max_pixels=config.max_pixels, role="content image")
    config.check_request(img.size)
    return images.resize_longest(img, config.size)


def describe(styles: Sequence[str], weights: Sequence[float]) -> str:
    return ", ".join(f"{n} {w:.2f}" for n, w in zip(styles, weights))


def one_pass(name: str, img: Any, config: Config, on_event: EventHandler | None, device: str, precision: str,
             notes: list[str], forward: Callable[[], torch.Tensor]) -> Result:
    """The events and result of a run that is one forward pass: ``Started`` (total 0), the pass,
    ``Finished``."""
    t0 = time.perf_counter()
    if on_event:
        on_event(Started(total=0, stages=(max(img.size),), model=f"fast:{name}", device=device,
                         precision=precision, notes=tuple(notes)))
    out = forward().float().cpu()
    reason = "a fast model: one forward pass"
    if on_event:
        on_event(Finished(iterations=0, final_loss=math.nan, seconds=time.perf_counter() - t0, reason=reason))
    return Result(images.to_image(out), [], config, notes, device=device, precision=precision, pixels=out,
                  stop_reason=reason)


class FastTransfer:
    """Runs a trained transformation network (``config.fast_model``): the styles are the model's,
    so ``styles`` must be empty; ``--blend`` weighs the model's styles. Events: ``Started`` (total
    0), then ``Finished``; with ``--refine N`` the optimiser's events follow from the network's
    output, towards the paintings stored in the model file."""

    name = "fast"

    def run(self, content: Any, styles: Sequence[Any], config: Config, *, on_event: EventHandler | None = None,
            on_iteration: IterationHandler | None = None, start: torch.Tensor | None = None,
            terms: Sequence[nn.Module] = ()) -> Result:
        name = model_name(config)
        if len(styles):
            raise ConfigError("a fast model carries its own styles: give the content image alone "
                              "(or leave out --fast-model to optimise towards style images)")
        if name.lower().endswith(".onnx"):
            return run_onnx(name, content, config, on_event)
        model = load_model(name)
        blend = check_blend(model, config.style_blend)
        img = content_image(content, config)
        device = resolve_device(config.device)
        if next(model.net.parameters()).device != device:
            model.net.to(device)
        x = images.to_tensor(img).to(device)
        notes = [f"fast model {name}: {describe(model.style_names, blend.tolist())}"]
        if config.refine:
            out = stylise(model, x, blend, None, False)
            refine = config.replace(fast_model=None, refine=0, iterations=config.refine)
            weights = [float(w) for w in blend.tolist()]
            used = [i for i, w in enumerate(weights) if w > 0]
            refine = refine.replace(style_blend=[weights[i] for i in used])
            paintings = [model.style_images()[i] for i in used]
            result = Optimisation().run(img, paintings, refine, on_event=on_event, on_iteration=on_iteration,
                                        start=out, terms=terms)
            result.config = config
            result.notes = notes + result.notes
            return result
        return one_pass(name, img, config, on_event, str(device), "fp32", notes,
                        lambda: stylise(model, x, blend, config.preserve_color, config.photo_filter))
