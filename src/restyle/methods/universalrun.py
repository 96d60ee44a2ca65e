"""How the universal method runs (:class:`~restyle.methods.universal.UniversalTransfer`): any painting in one pass, no training per painting (Li et al. 2017,
"Universal Style Transfer via Feature Transforms"). VGG19 encodes the photo and each painting to
``block4_conv1``; a feature transform (:mod:`restyle.nn.wct`) gives the photo's features the
paintings' statistics (blended by ``--style-blend``, limited to regions by ``--mask`` or
``--label-image``, mixed with the photo's own by ``--strength``); a decoder trained only on
photographs (:mod:`restyle.train.decoder`) turns them back into an image."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from restyle.backbone import cached_backbone
from restyle.config import Config
from restyle.engine import Result
from restyle.engine.backend import autocast, resolve_device, resolve_precision, weights_dtype
from restyle.engine.events import EventHandler
from restyle.engine.targets import MaskImages, content_regions
from restyle.errors import ConfigError
from restyle.io import images
from restyle.methods.base import IterationHandler, MethodBase
from restyle.methods.onepass import colour_controls, content_image, describe, one_pass
from restyle.nn import controls, wct
from restyle.nn.decoder import Decoder, DecoderShape

#: The bundled decoder (restyle/models/); ``RESTYLE_DECODER`` or the ``decoder`` option names another.
DECODER_FILE = "universal.pt"
#: A strength of None (not given) is the full transfer.
FULL = 1.0


def decoder_path(name: str | None) -> Path:
    if name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"decoder '{name}' does not exist")
        return path
    path = Path(str(files("restyle") / "models" / DECODER_FILE))
    if not path.is_file():
        raise ConfigError(f"the universal method's decoder ({DECODER_FILE}) is not installed with restyle: "
                          "train one (python -m restyle.train.decoder) and give it with --decoder")
    return path


@functools.lru_cache(maxsize=2)
def load_decoder(path: Path, device: torch.device) -> Decoder:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        dec = Decoder(DecoderShape.from_dict(data["shape"]))
        dec.load_state_dict({k: v.float() for k, v in data["state"].items()})
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"'{path}' is not a restyle decoder ({type(err).__name__})") from None
    dec = dec.eval().requires_grad_(False).to(device)
    if device.type == "cpu":
        dec = dec.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return dec


def run_universal(method: MethodBase, content: Any, styles: Sequence[Any], config: Config, *,
                  on_event: EventHandler | None = None, on_iteration: IterationHandler | None = None,
                  start: torch.Tensor | None = None, terms: Sequence[nn.Module] = ()) -> Result:
    """:meth:`UniversalTransfer.run <restyle.methods.universal.UniversalTransfer.run>`."""
    method.check(config, len(styles))
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    precision = precision if precision in ("bf16", "fp32") else "fp32"
    dec = load_decoder(decoder_path(config.method_options.get("decoder")), device)
    enc = cached_backbone("vgg19", None, "max", device, weights_dtype(precision))
    img = content_image(content, config)
    x = images.to_tensor(img).to(device)
    longest = round(max(img.size) * config.style_scale)
    paintings = [images.resize_longest(images.load_image(s, max_pixels=config.max_pixels,
                                                         role=f"style image {i}"), longest)
                 for i, s in enumerate(styles, 1)]
    weights = config.style_blend or [1.0] * len(paintings)
    weights = [w / sum(weights) for w in weights]
    regions = content_regions(config, MaskImages(), [], tuple(x.shape[-2:]), len(paintings), device)
    transform = str(config.method_options.get("transform", "wct"))
    strength = FULL if config.strength is None else config.strength
    names = [Path(s).stem if isinstance(s, (str, Path)) else f"style {i}" for i, s in enumerate(styles, 1)]
    notes = [f"universal ({transform}, strength {strength:g}): {describe(names, weights)}"]

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            layer = dec.shape.layer
            fc = encode(enc, x, layer, device, precision)
            moments = [wct.Moments(encode(enc, images.to_tensor(p).to(device), layer, device, precision))
                       for p in paintings]
            if regions is None:
                f = wct.transfer(fc, moments, weights, strength, transform)
            else:
                f = regional(fc, moments, regions, strength, transform)
            out = decode(dec, f, x.shape[-2:], device, precision)
            return colour_controls(out, x, config.preserve_color, config.photo_filter)

    return one_pass(method.name, img, config, on_event, str(device), precision, notes, forward)


def encode(enc: nn.Module, x: torch.Tensor, layer: str, device: torch.device, precision: str) -> torch.Tensor:
    """``x``'s features at ``layer`` (reflection-padded to a multiple of 8 so the decoder returns its size)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        x = F.pad(x, [0, pw, 0, ph], mode="reflect")
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        return enc(x, [layer])[layer].float()


def decode(dec: Decoder, f: torch.Tensor, size: Sequence[int], device: torch.device, precision: str) -> torch.Tensor:
    with autocast(device, precision):
        out = dec(f.to(memory_format=torch.channels_last) if device.type == "cpu" else f)
    return out.float()[..., : size[0], : size[1]].contiguous()


def regional(fc: torch.Tensor, moments: Sequence[wct.Moments], regions: Sequence[torch.Tensor], strength: float,
             transform: str) -> torch.Tensor:
    """Each painting's transform where its region is, the photo's own features elsewhere."""
    size = (fc.shape[-2], fc.shape[-1])
    out = fc.clone()
    for m, region in zip(moments, regions):
        mask = controls.resize_mask(region.cpu(), size).to(fc.device).reshape(1, 1, *size)
        out = out + mask * (wct.transfer(fc, [m], [1.0], strength, transform) - fc)
    return out
