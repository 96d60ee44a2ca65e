"""How the fast method runs (:class:`~restyle.methods.fast.FastTransfer`): the network's forward
pass, by torch or (an ONNX export) onnxruntime, and the optimiser's ``--refine`` after it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from restyle.config import Config
from restyle.engine import Result
from restyle.engine.backend import resolve_device
from restyle.engine.events import EventHandler
from restyle.errors import ConfigError
from restyle.io import images
from restyle.methods.base import IterationHandler, MethodBase
from restyle.methods.fastmodel import FastModel, check_blend, load_model
from restyle.methods.onepass import colour_controls, content_image, describe, one_pass
from restyle.methods.optimise import Optimisation


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


def run_fast(method: MethodBase, content: Any, styles: Sequence[Any], config: Config, *,
             on_event: EventHandler | None = None, on_iteration: IterationHandler | None = None,
             start: torch.Tensor | None = None, terms: Sequence[nn.Module] = ()) -> Result:
    """:meth:`FastTransfer.run <restyle.methods.fast.FastTransfer.run>`."""
    name = model_name(config)
    method.check(config, len(styles))
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
        refine = config.replace(method=None, fast_model=None, refine=0, iterations=config.refine)
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
