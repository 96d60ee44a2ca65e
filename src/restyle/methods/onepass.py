"""What the methods that paint in one pass share: the content image as loaded and checked, the
colour controls applied after the pass, and the events and result of a run without iterations."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from restyle.config import Config
from restyle.engine import Result
from restyle.engine.events import EventHandler, Finished, Started
from restyle.io import images
from restyle.nn import controls


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
