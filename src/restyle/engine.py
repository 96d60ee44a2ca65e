"""The optimisation stage: targets computed once, then the image optimised with L-BFGS or Adam."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from restyle import images
from restyle.config import Config
from restyle.errors import ConfigError, WeightsError, notice
from restyle.losses import ContentLoss, StyleLoss, gram, tv_loss
from restyle.models import VGGFeatures, build_backbone

HISTORY_FIELDS = ("iteration", "total", "content", "style", "tv", "seconds")


@dataclass
class Result:
    """What a run produces: the image, its per-iteration loss history, and how it was made."""

    image: Any  # PIL.Image.Image
    history: list[dict[str, float]]
    config: Config
    notes: list[str] = field(default_factory=list)
    stopped_early: str | None = None  # why the run stopped before its last iteration, if it did
    device: str = "cpu"
    precision: str = "fp32"

    @property
    def final_loss(self) -> float:
        return self.history[-1]["total"] if self.history else float("nan")


# Backbones are expensive to build; keep the last few (keyed by what defines them) per process.
_BACKBONES: dict[tuple, VGGFeatures] = {}


def get_backbone(model: str, weights: str | None, pooling: str, device: torch.device) -> VGGFeatures:
    key = (model, weights, pooling, str(device))
    if key not in _BACKBONES:
        if len(_BACKBONES) >= 4:
            _BACKBONES.pop(next(iter(_BACKBONES)))
        net = build_backbone(model, weights, pooling).to(device)
        if device.type == "cuda" or _bf16_cpu_ok():
            net = net.to(memory_format=torch.channels_last)
        _BACKBONES[key] = net
    return _BACKBONES[key]


def _bf16_cpu_ok() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for, but no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware runs it natively (CUDA, CPUs with AVX512-BF16/AMX), else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "tf32"
        return "bf16" if _bf16_cpu_ok() else "fp32"
    if name == "bf16" and device.type == "cpu" and not _bf16_cpu_ok():
        notice("this CPU has no native bf16; bf16 will be slow (try --precision fp32)")
    return name


class StyleTransfer:
    """One engine: build the backbone, compute targets once, optimise the image.

    >>> st = StyleTransfer(Config(size=256))
    >>> result = st.run("photo.jpg", ["painting.jpg"])
    """

    def __init__(self, config: Config | None = None, backbone: VGGFeatures | None = None):
        self.config = config if config is not None else Config()
        self.notes: list[str] = []
        self.device = resolve_device(self.config.device)
        self.precision = resolve_precision(self.config.precision, self.device)
        self.backbone = backbone if backbone is not None else self._load_backbone()

    # ---- setup ------------------------------------------------------------------------------
    def _load_backbone(self) -> VGGFeatures:
        c = self.config
        try:
            return get_backbone(c.model, c.weights, c.pooling, self.device)
        except WeightsError as err:
            if not (c.model == "vgg16" and c.weights is None and c.fallback_vgg19):
                raise
            note = f"VGG16 weights unavailable ({err}); using the embedded VGG19 with the same layer names"
            notice(note)
            self.notes.append(note)
            self.config = c.replace(model="vgg19")
            return get_backbone("vgg19", None, c.pooling, self.device)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _prepare_tensor(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device)
        if self.device.type == "cuda" or self.precision == "bf16":
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self._autocast():
            return self.backbone(self._prepare_tensor(image), layers)

    def load_inputs(self, content: Any, styles: Sequence[Any]) -> tuple[Any, list[Any]]:
        c = self.config
        content_img = images.resize_longest(images.load_image(content, max_pixels=c.max_pixels, role="content image"), c.size)
        style_size = max(2, round(max(content_img.size) * c.style_scale))
        style_imgs = [
            images.resize_longest(images.load_image(s, max_pixels=c.max_pixels, role=f"style image {i + 1}"), style_size)
            for i, s in enumerate(styles)
        ]
        return content_img, style_imgs

    def set_targets(self, content_img: Any, style_imgs: Sequence[Any]) -> None:
        """Compute the content features and (blended) style Grams once."""
        c = self.config
        if not style_imgs:
            raise ConfigError("give at least one style image")
        blend = c.style_blend if c.style_blend is not None else [1.0] * len(style_imgs)
        if len(blend) != len(style_imgs):
            raise ConfigError(f"--style-blend has {len(blend)} weight(s) for {len(style_imgs)} style image(s)")
        self.content = images.to_tensor(content_img).to(self.device)
        feats = self.features(self.content, list(c.content_layers))
        self.content_losses = {n: ContentLoss(feats[n]) for n in c.content_layers}
        grams: dict[str, list[torch.Tensor]] = {n: [] for n in c.style_layers}
        for img in style_imgs:
            feats = self.features(images.to_tensor(img), list(c.style_layers))
            for n in c.style_layers:
                grams[n].append(gram(feats[n]))
        self.style_losses = {n: StyleLoss(StyleLoss.blended_target(g, blend)) for n, g in grams.items()}
        self.layers = list(dict.fromkeys(list(c.content_layers) + list(c.style_layers)))

    def initial_image(self) -> torch.Tensor:
        c = self.config
        if c.init == "content":
            return self.content.clone()
        if c.init == "noise":
            gen = torch.Generator().manual_seed(c.seed)
            return torch.rand(self.content.shape, generator=gen).to(self.device)
        h, w = self.content.shape[-2:]
        img = images.resize_to(images.load_image(c.init, max_pixels=c.max_pixels, role="init image"), (w, h))
        return images.to_tensor(img).to(self.device)

    # ---- the objective ----------------------------------------------------------------------
    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, content, style, tv) for image ``x``; differentiable w.r.t. ``x``."""
        c = self.config
        with self._autocast():
            feats = self.backbone(self._prepare_tensor(x), self.layers)
        content = _weighted(c.content_layers, {n: l(feats[n]) for n, l in self.content_losses.items()})
        style = _weighted(c.style_layers, {n: l(feats[n]) for n, l in self.style_losses.items()})
        tv = tv_loss(x)
        total = c.content_weight * content + c.style_weight * style + c.tv_weight * tv
        return total, content, style, tv

    # ---- the loop ---------------------------------------------------------------------------
    def run(
        self,
        content: Any,
        styles: Sequence[Any],
        *,
        on_iteration: Callable[[dict[str, float], torch.Tensor], None] | None = None,
    ) -> Result:
        """Optimise; ``on_iteration(row, image)`` is called after every iteration (progress, saves)."""
        c = self.config
        torch.manual_seed(c.seed)
        start = time.perf_counter()
        content_img, style_imgs = self.load_inputs(content, styles)
        self.set_targets(content_img, style_imgs)
        x = self.initial_image().requires_grad_(True)
        opt = self._optimizer(x)
        history: list[dict[str, float]] = []
        stopped: str | None = None
        last_good = x.detach().clone()
        current: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            total, *parts = self.losses(x)
            total.backward()
            # With a line search the closure runs several times per step; the first evaluation is
            # the loss of the image the step started from, which is what the history records.
            current.setdefault("parts", torch.stack([total.detach(), *[p.detach() for p in parts]]))
            return total

        def record(i: int, parts: torch.Tensor) -> bool:
            values = parts.tolist()
            row = dict(zip(HISTORY_FIELDS, [i, *values, time.perf_counter() - start]))
            if not all(math.isfinite(v) for v in values):
                return False
            history.append(row)
            if on_iteration is not None:
                on_iteration(row, x.detach())
            return True

        for i in range(c.iterations):
            snapshot = x.detach().clone()
            current.clear()
            opt.step(closure)
            if not record(i, current["parts"]):
                stopped = f"loss became non-finite at iteration {i}; kept the last good image (iteration {max(i - 1, 0)})"
                x.data.copy_(last_good)
                break
            last_good = snapshot
        if stopped is None:
            with torch.no_grad():
                parts = torch.stack([t.detach() for t in self.losses(x)])
            if not record(c.iterations, parts):
                stopped = f"loss became non-finite after the last iteration; kept the image of iteration {c.iterations - 1}"
                x.data.copy_(last_good)
        if stopped:
            notice(stopped)
            self.notes.append(stopped)
        image = images.to_image(x.detach().float().cpu())
        return Result(image, history, self.config, list(self.notes), stopped, str(self.device), self.precision)

    def _optimizer(self, x: torch.Tensor) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "lbfgs":
            return torch.optim.LBFGS(
                [x], lr=c.lr if c.lr is not None else 1.0, max_iter=1, history_size=50,
                line_search_fn="strong_wolfe" if c.line_search else None,
                tolerance_grad=0.0, tolerance_change=0.0,
            )
        return torch.optim.Adam([x], lr=c.lr if c.lr is not None else 0.02)


def _weighted(weights: dict[str, float], values: dict[str, torch.Tensor]) -> torch.Tensor:
    total_w = sum(weights.values()) or 1.0
    return sum(values[n] * (w / total_w) for n, w in weights.items())
