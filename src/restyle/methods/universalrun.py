"""How the universal method runs (:class:`~restyle.methods.universal.UniversalTransfer`): Li et
al.'s cascade, coarse to fine. At each level (``block4_conv1``, then 3, 2, 1) VGG19 encodes the
picture so far, a feature transform (:mod:`restyle.nn.wct`) gives its features the paintings'
statistics at that layer (blended by ``--style-blend``, limited to regions by ``--mask`` or
``--label-image``, mixed with the picture's own by ``--strength``), and that level's decoder, trained
only on photographs (:mod:`restyle.train.decoder`), turns them back into an image. The deep level
moves the composition's colours and large marks; the shallow ones add the fine strokes."""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
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

#: The bundled decoder (restyle/models/); the ``decoder`` option names another.
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
def load_decoders(path: Path, device: torch.device) -> tuple[Decoder, ...]:
    """The decoders in a file (:func:`restyle.train.decoder.save_decoders`), deepest first."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        levels = data["levels"] if "levels" in data else [data]
        decoders = []
        for level in levels:
            dec = Decoder(DecoderShape.from_dict(level["shape"]))
            dec.load_state_dict({k: v.float() for k, v in level["state"].items()})
            decoders.append(dec.eval().requires_grad_(False).to(device))
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"'{path}' is not a restyle decoder ({type(err).__name__})") from None
    if device.type == "cpu":
        decoders = [d.to(memory_format=torch.channels_last) for d in decoders]  # type: ignore[call-overload]
    return tuple(sorted(decoders, key=lambda d: -d.shape.downsamplings))


def run_universal(method: MethodBase, content: Any, styles: Sequence[Any], config: Config, *,
                  on_event: EventHandler | None = None, on_iteration: IterationHandler | None = None,
                  start: torch.Tensor | None = None, terms: Sequence[nn.Module] = ()) -> Result:
    """:meth:`UniversalTransfer.run <restyle.methods.universal.UniversalTransfer.run>`."""
    method.check(config, len(styles))
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    precision = precision if precision in ("bf16", "fp32") else "fp32"
    decoders = load_decoders(decoder_path(config.method_options.get("decoder")), device)
    decoders = decoders[: int(config.method_options.get("levels") or len(decoders))]
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
    notes = [f"universal ({transform}, {len(decoders)} level(s), strength {strength:g}): {describe(names, weights)}"]

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            moments = [painting_moments(enc, p, [d.shape.layer for d in decoders], device, precision)
                       for p in paintings]
            out = x
            for dec in decoders:  # coarse to fine: each level starts from the picture the one before made
                layer = dec.shape.layer
                fc = encode(enc, out, layer, device, precision)
                level = [m[layer] for m in moments]
                if regions is None:
                    f = wct.transfer(fc, level, weights, strength, transform)
                else:
                    f = regional(fc, level, regions, strength, transform)
                out = decode(dec, f, x.shape[-2:], device, precision)
            return colour_controls(out, x, config.preserve_color, config.photo_filter)

    return one_pass(method.name, img, config, on_event, str(device), precision, notes, forward)


#: A painting's statistics by (its pixels' digest, size, layers, device, precision): a video's frames
#: and a batch's photos reuse them instead of encoding the painting again.
MOMENTS: OrderedDict[tuple[str, ...], dict[str, wct.Moments]] = OrderedDict()
MOMENTS_KEPT = 8


def painting_moments(enc: nn.Module, painting: Any, layers: Sequence[str], device: torch.device,
                     precision: str) -> dict[str, wct.Moments]:
    """The painting's statistics at each of ``layers``, from one pass of the encoder."""
    key = (hashlib.sha1(painting.tobytes()).hexdigest(), str(painting.size), ",".join(layers), str(device), precision)
    if key in MOMENTS:
        MOMENTS.move_to_end(key)
        return MOMENTS[key]
    feats = encode_all(enc, images.to_tensor(painting).to(device), layers, device, precision)
    moments = {n: wct.Moments(f) for n, f in feats.items()}
    MOMENTS[key] = moments
    if len(MOMENTS) > MOMENTS_KEPT:
        MOMENTS.popitem(last=False)
    return moments


def encode(enc: nn.Module, x: torch.Tensor, layer: str, device: torch.device, precision: str) -> torch.Tensor:
    """``x``'s features at ``layer`` (reflection-padded to a multiple of 8 so every decoder returns its size)."""
    return encode_all(enc, x, [layer], device, precision)[layer]


def encode_all(enc: nn.Module, x: torch.Tensor, layers: Sequence[str], device: torch.device,
               precision: str) -> dict[str, torch.Tensor]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        x = F.pad(x, [0, pw, 0, ph], mode="reflect")
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        return {n: f.float() for n, f in enc(x, layers).items()}


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
