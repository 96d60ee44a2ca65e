"""The optimisation stage: targets computed once, then the image optimised with L-BFGS or Adam."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from restyle.backbone import cached_backbone, channels_last
from restyle.config import Config
from restyle.engine.backend import backend_flags, resolve_device, resolve_precision
from restyle.engine.events import EventHandler, Finished, Progress, Started
from restyle.errors import ConfigError, WeightsError, notice
from restyle.io import images
from restyle.io.history import HISTORY_FIELDS, LOSS_FIELDS  # noqa: F401  (HISTORY_FIELDS re-exported)
from restyle.nn import controls, optim
from restyle.nn.losses import (
    ContentLoss,
    GuidedStyleLoss,
    StyleLoss,
    gram,
    masked_gram,
    tv_loss,
)
from restyle.nn.vgg import VGGFeatures

#: The box the image is optimised in: the range of the image delivered. Without it, ~5% of the
#: values leave [0, 1] and clamping the result raised its loss by a third (1.17 -> 1.55 at 256²).
PIXEL_RANGE = (0.0, 1.0)
#: Steps between host reads of the losses on a GPU (on the CPU every step: a read costs nothing
#: there), and the most memory the images of not-yet-read rows may take.
SYNC_EVERY_CUDA = 20
SNAPSHOT_BYTES = 256 * 2**20
#: The most memory the L-BFGS history may take (50 pairs up to about 1340² px, then fewer).
HISTORY_BYTES = 2 * 2**30


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
    written: dict[str, Any] = field(default_factory=dict)  # files written for it (api.stylize with output=)
    #: The output before 8-bit rounding: 1x3xHxW float32 in [0, 1] on the CPU (for 16-bit outputs).
    pixels: torch.Tensor | None = None

    @property
    def final_loss(self) -> float:
        return self.history[-1]["total"] if self.history else float("nan")


class StyleTransfer:
    """One engine: build the backbone, compute targets once, optimise the image.

    >>> st = StyleTransfer(Config(size=256))
    >>> result = st.run("photo.jpg", ["painting.jpg"])
    """

    def __init__(self, config: Config | None = None, backbone: VGGFeatures | None = None,
                 sync_every: int | None = None):
        self.config = config if config is not None else Config()
        self.notes: list[str] = []
        self.device = resolve_device(self.config.device)
        #: Steps between host reads of the losses (rows reach ``on_iteration`` in batches of this).
        self.sync_every = sync_every if sync_every is not None else (1 if self.device.type == "cpu" else SYNC_EVERY_CUDA)
        self.loop_seconds = 0.0  # time spent in the optimisation loops (synced), for benchmarks
        self.precision = resolve_precision(self.config.precision, self.device)
        self.backbone = backbone if backbone is not None else self._load_backbone()
        self.photo = None  # the matting-Laplacian term (photo mode), built per stage by set_targets
        self._masks: dict[tuple[str, str], torch.Tensor] = {}  # mask images, loaded once per run
        self._labels: dict[str, tuple[list[torch.Tensor], list[tuple[int, int, int]]]] = {}

    # ---- setup ------------------------------------------------------------------------------
    def _load_backbone(self) -> VGGFeatures:
        c = self.config
        try:
            return cached_backbone(c.model, c.weights, c.pooling, self.device, self._weights_dtype())
        except WeightsError as err:
            if not (c.model == "vgg16" and c.weights is None and c.fallback_vgg19):
                raise
            note = f"VGG16 weights unavailable ({err}); using the embedded VGG19 with the same layer names"
            notice(note)
            self.notes.append(note)
            self.config = c.replace(model="vgg19")
            return cached_backbone("vgg19", None, c.pooling, self.device, self._weights_dtype())

    def _weights_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _prepare_tensor(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device)
        if channels_last(self.device, self._weights_dtype()):
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self._autocast():
            return self.backbone(self._prepare_tensor(image), layers)

    def load_inputs(self, content: Any, styles: Sequence[Any]) -> tuple[Any, list[Any]]:
        """The content and style images at the working size (the last stage's, with --scales)."""
        content_src, style_srcs = self.load_sources(content, styles)
        return self.resize_inputs(content_src, style_srcs, self.stage_sizes(content_src)[-1])

    def load_sources(self, content: Any, styles: Sequence[Any]) -> tuple[Any, list[Any]]:
        """The content and style images as given (8-bit RGB, full size)."""
        c = self.config
        content_img = images.load_image(content, max_pixels=c.max_pixels, role="content image")
        style_imgs = [images.load_image(s, max_pixels=c.max_pixels, role=f"style image {i + 1}") for i, s in enumerate(styles)]
        return content_img, style_imgs

    def stage_sizes(self, content_src: Any) -> list[int | None]:
        """Longest side of each coarse-to-fine stage (one stage without --scales/--multiscale;
        ``None`` = the content image's own size)."""
        c = self.config
        if c.scales is None and not c.multiscale:
            return [c.size]
        return controls.stage_sizes(c.size if c.size is not None else max(content_src.size), c.scales, c.multiscale)

    def resize_inputs(self, content_src: Any, style_srcs: Sequence[Any], size: int | None) -> tuple[Any, list[Any]]:
        """Content at longest side ``size``; styles at that size times ``style_scale``."""
        content_img = images.resize_longest(content_src, size)
        style_size = max(2, round(max(content_img.size) * self.config.style_scale))
        return content_img, [images.resize_longest(s, style_size) for s in style_srcs]

    def set_targets(self, content_img: Any, style_imgs: Sequence[Any]) -> None:
        """Compute the content features, the (blended or region-guided) style Grams and, in photo
        mode, the matting Laplacian, once per stage. Colour preservation changes what the
        network sees here: luminance only (luminance mode), or styles recoloured (histogram)."""
        c = self.config
        self.photo = None  # free the previous stage's matting Laplacian first
        if not style_imgs:
            raise ConfigError("give at least one style image")
        blend = c.style_blend if c.style_blend is not None else [1.0] * len(style_imgs)
        if len(blend) != len(style_imgs):
            raise ConfigError(f"--style-blend has {len(blend)} weight(s) for {len(style_imgs)} style image(s)")
        self.content_rgb = _as_tensor(content_img).to(self.device)
        styles = [_as_tensor(img).to(self.device) for img in style_imgs]
        self.content = self.content_rgb
        if c.preserve_color == "luminance":
            content_y = controls.luminance(self.content_rgb)
            self.content = controls.gray3(content_y)
            styles = [controls.gray3(controls.match_luminance(controls.luminance(s), content_y)) for s in styles]
        elif c.preserve_color == "histogram":
            styles = [controls.match_color(s, self.content_rgb) for s in styles]
        feats = self.features(self.content, list(c.content_layers))
        self.content_losses = {n: ContentLoss(feats[n]) for n in c.content_layers}
        regions = self._content_regions(len(styles))
        style_masks = self._style_masks(styles)
        names = self.backbone.names
        targets: dict[str, list[torch.Tensor]] = {n: [] for n in c.style_layers}
        for style, smask in zip(styles, style_masks):
            feats = self.features(style, list(c.style_layers))
            for n in c.style_layers:
                if smask is None:
                    targets[n].append(gram(feats[n]))
                else:
                    targets[n].append(masked_gram(feats[n], controls.layer_mask(smask, controls.pools_before(names, n))))
        if regions is None:
            self.style_losses = {n: StyleLoss(StyleLoss.blended_target(t, blend)) for n, t in targets.items()}
        else:
            used = [i for i, m in enumerate(regions) if float(m.sum()) > 0]
            self.style_losses = {
                n: GuidedStyleLoss([controls.layer_mask(regions[i], controls.pools_before(names, n)) for i in used],
                                   [t[i] for i in used])
                for n, t in targets.items()
            }
        self.layers = list(dict.fromkeys(list(c.content_layers) + list(c.style_layers)))
        if c.photo_weight > 0:
            from restyle.nn.matting import MattingLoss

            self.photo = MattingLoss(self.content_rgb)

    def _mask_source(self, path: str, role: str) -> torch.Tensor:
        if (path, role) not in self._masks:
            img = images.load_image(path, max_pixels=self.config.max_pixels, role=role)
            self._masks[(path, role)] = controls.image_to_mask(img)
        return self._masks[(path, role)]

    def _content_regions(self, n_styles: int) -> list[torch.Tensor] | None:
        """Per style image, the content-pixel mask where it applies (None: everywhere)."""
        c = self.config
        size = tuple(self.content.shape[-2:])
        if c.masks is not None:
            if len(c.masks) != n_styles:
                raise ConfigError(f"{len(c.masks)} --mask image(s) for {n_styles} style image(s); give one per style image")
            masks = [self._mask_source(p, f"mask {i + 1}") for i, p in enumerate(c.masks)]
        elif c.label_image is not None:
            if c.label_image not in self._labels:
                img = images.load_image(c.label_image, max_pixels=c.max_pixels, role="label image")
                self._labels[c.label_image] = controls.label_masks(img, n_styles)
                regions = ", ".join(f"#{r:02x}{g:02x}{b:02x} -> style {i + 1}"
                                    for i, (r, g, b) in enumerate(self._labels[c.label_image][1]))
                self.notes.append(f"label image regions: {regions}; black: no style")
            masks = self._labels[c.label_image][0]
        else:
            return None
        out = [controls.resize_mask(m, size).to(self.device) for m in masks]
        for i, m in enumerate(out):
            note = f"style image {i + 1}'s region is empty: that style is not used"
            if float(m.sum()) == 0 and note not in self.notes:
                self.notes.append(note)
        return out

    def _style_masks(self, styles: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        c = self.config
        if c.style_masks is None:
            return [None] * len(styles)
        if len(c.style_masks) != len(styles):
            raise ConfigError(f"{len(c.style_masks)} --style-mask value(s) for {len(styles)} style image(s); "
                              "give one per style image (none = the whole image)")
        out: list[torch.Tensor | None] = []
        for i, (path, style) in enumerate(zip(c.style_masks, styles)):
            if path.lower() == "none":
                out.append(None)
                continue
            mask = controls.resize_mask(self._mask_source(path, f"style mask {i + 1}"), tuple(style.shape[-2:]))
            if float(mask.sum()) == 0:
                raise ConfigError(f"style mask {i + 1} ('{path}') is all black: it selects no part of style image {i + 1}")
            out.append(mask.to(self.device))
        return out

    def initial_image(self) -> torch.Tensor:
        c = self.config
        if c.init == "content":
            return self.content.clone()
        if c.init == "noise":
            gen = torch.Generator().manual_seed(c.seed)
            return torch.rand(self.content.shape, generator=gen).to(self.device)
        h, w = self.content.shape[-2:]
        img = images.resize_to(images.load_image(c.init, max_pixels=c.max_pixels, role="init image"), (w, h))
        x = images.to_tensor(img).to(self.device)
        return controls.gray3(controls.luminance(x)) if c.preserve_color == "luminance" else x

    # ---- the objective ----------------------------------------------------------------------
    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(total, content, style, tv, photo) for image ``x``; differentiable w.r.t. ``x``."""
        c = self.config
        with self._autocast():
            feats = self.backbone(self._prepare_tensor(x), self.layers)
        content = _weighted(c.content_layers, {n: l(feats[n]) for n, l in self.content_losses.items()})
        style = _weighted(c.style_layers, {n: l(feats[n]) for n, l in self.style_losses.items()})
        tv = tv_loss(x)
        total = c.content_weight * content + c.style_weight * style + c.tv_weight * tv
        photo = self.photo(x) if self.photo is not None else torch.zeros((), device=x.device)
        if c.photo_weight > 0:
            total = total + c.photo_weight * photo
        return total, content, style, tv, photo

    def finish(self, x: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
        """The output from the optimised image: guided filter (--photo-filter), then the
        content's chroma put back (--preserve-color luminance)."""
        c = self.config
        x = x.detach().float()
        if c.photo_filter:
            x = controls.guided_filter(content_rgb, x)
        if c.preserve_color == "luminance":
            x = controls.recombine_luminance(controls.luminance(x), content_rgb)
        return x

    # ---- the loop ---------------------------------------------------------------------------
    def run(
        self,
        content: Any,
        styles: Sequence[Any],
        *,
        on_event: EventHandler | None = None,
        on_iteration: Callable[[dict[str, float], torch.Tensor], None] | None = None,
    ) -> Result:
        """Optimise. ``on_event`` receives :class:`Started`, then a :class:`Progress` per history
        row, then :class:`Finished`; ``on_iteration(row, image)`` is the same rows as plain dicts."""
        with backend_flags(self.device, self.precision):
            return self._run(content, styles, on_event, on_iteration)

    def _run(self, content: Any, styles: Sequence[Any], on_event: EventHandler | None,
             on_iteration: Callable[[dict[str, float], torch.Tensor], None] | None) -> Result:
        c = self.config
        emit = on_event or (lambda event: None)
        torch.manual_seed(c.seed)
        start = time.perf_counter()
        content_src, style_srcs = self.load_sources(content, styles)
        sizes = self.stage_sizes(content_src)
        self.planned_steps = total = len(sizes) * c.iterations + 1  # history rows (progress bars)
        stages = tuple(int(s) if s is not None else max(content_src.size) for s in sizes)
        emit(Started(total, stages, self.config.model, str(self.device), self.precision, tuple(self.notes)))

        def on_row(row: dict[str, float], image: torch.Tensor) -> None:
            emit(Progress(int(row["iteration"]), total, int(row["scale"]),
                          {k: row[k] for k in LOSS_FIELDS}, row["seconds"], image))
            if on_iteration is not None:
                on_iteration(row, image)
        history: list[dict[str, float]] = []
        stopped: str | None = None
        x: torch.Tensor | None = None
        for k, size in enumerate(sizes):
            self.set_targets(*self.resize_inputs(content_src, style_srcs, size))
            x0 = self.initial_image() if x is None else controls.upsample(x, tuple(self.content.shape[-2:]))
            x, stopped = self._optimise(x0, k * c.iterations, k == len(sizes) - 1, history, start, on_row)
            if stopped:
                break
        assert x is not None
        content_rgb = self.content_rgb
        if stopped and size != sizes[-1]:  # deliver the requested size even when a stage failed
            content_rgb = _as_tensor(self.resize_inputs(content_src, [], sizes[-1])[0]).to(self.device)
            x = controls.upsample(x, tuple(content_rgb.shape[-2:]))
        pixels = self.finish(x, content_rgb).cpu()
        image = images.to_image(pixels)
        final = history[-1]["total"] if history else float("nan")
        emit(Finished(max(0, len(history) - 1), final, time.perf_counter() - start, stopped))
        return Result(image, history, self.config, list(self.notes), stopped, str(self.device), self.precision,
                      pixels=pixels.clamp(0, 1))

    def _optimise(self, x0: torch.Tensor, offset: int, final: bool, history: list[dict[str, float]], start: float,
                  on_iteration: Callable[[dict[str, float], torch.Tensor], None] | None) -> tuple[torch.Tensor, str | None]:
        """One stage: ``iterations`` steps from ``x0``; rows numbered from ``offset``. The last stage
        also records the loss after its last step. Returns (image, why it stopped early or None).

        The losses are read to the host (a device sync) once per ``sync_every`` steps, not every
        step: rows, their images and the progress callback are delivered in batches. A
        non-finite loss is still caught at the row where it first appears, and the image of the
        row before it is restored."""
        c = self.config
        scale = max(x0.shape[-2:])
        x = x0.detach().clone().requires_grad_(True)
        opt = self._optimizer(x)
        stopped: str | None = None
        last_good = x.detach().clone()
        current: dict[str, torch.Tensor] = {}
        pending: list[tuple[int, torch.Tensor, torch.Tensor, float]] = []  # (step, losses, image, seconds)
        every = self._rows_per_sync(x)

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            total, *parts = self.losses(x)
            total.backward()
            # With a line search the closure runs several times per step; the first evaluation is
            # the loss of the image the step started from, which is what the history records.
            current.setdefault("parts", torch.stack([total.detach(), *[p.detach() for p in parts]]))
            return total

        def flush() -> int | None:
            """Record the pending rows (one host read); the step of the first non-finite one, if any."""
            nonlocal last_good
            if not pending:
                return None
            rows = torch.stack([p for _, p, _, _ in pending]).tolist()
            try:
                for (i, _, image, seconds), values in zip(pending, rows):
                    if not all(math.isfinite(v) for v in values):
                        return i
                    row = {"iteration": offset + i, "scale": scale, **dict(zip(LOSS_FIELDS, values)), "seconds": seconds}
                    history.append(row)
                    if on_iteration is not None:
                        on_iteration(row, image)
                    last_good = image
                return None
            finally:
                pending.clear()

        loop_start = time.perf_counter()
        for i in range(c.iterations):
            snapshot = x.detach().clone()  # the image after i steps, whose loss this step computes
            current.clear()
            opt.step(closure)
            if isinstance(opt, torch.optim.Optimizer):  # --line-search: torch's L-BFGS has no bounds
                with torch.no_grad():
                    x.clamp_(*PIXEL_RANGE)
            pending.append((i, current["parts"], snapshot, time.perf_counter() - start))
            if len(pending) >= every or i == c.iterations - 1:
                bad = flush()
                if bad is not None:
                    stopped = (f"loss became non-finite at iteration {offset + bad}; "
                               f"kept the last good image (iteration {offset + max(bad - 1, 0)})")
                    x.data.copy_(last_good)
                    break
        self.loop_seconds += time.perf_counter() - loop_start
        if stopped is None and final:
            with torch.no_grad():
                parts = torch.stack([t.detach() for t in self.losses(x)])
            pending.append((c.iterations, parts, x.detach(), time.perf_counter() - start))
            if flush() is not None:
                stopped = (f"loss became non-finite after the last iteration; "
                           f"kept the image of iteration {offset + c.iterations - 1}")
                x.data.copy_(last_good)
        elif stopped is None and not torch.isfinite(x).all():
            stopped = f"the image became non-finite at scale {scale}; kept the image of iteration {offset + c.iterations - 1}"
            x.data.copy_(last_good)
        if stopped:
            notice(stopped)
            self.notes.append(stopped)
        return x.detach(), stopped

    def _rows_per_sync(self, x: torch.Tensor) -> int:
        """Steps between host reads: ``sync_every``, fewer where the pending images would take
        more than ``SNAPSHOT_BYTES``."""
        image_bytes = x.numel() * x.element_size()
        return max(1, min(self.sync_every, SNAPSHOT_BYTES // image_bytes))

    def _optimizer(self, x: torch.Tensor):
        c = self.config
        # A run of N steps stores at most N - 1 pairs: allocate no more (same iterates, less memory).
        history = max(1, min(lbfgs_history(x), c.iterations - 1))
        if c.optimizer == "adam":
            return optim.Adam(x, lr=c.lr if c.lr is not None else 0.02, bounds=PIXEL_RANGE)
        if not c.line_search:
            return optim.LBFGS(x, lr=c.lr if c.lr is not None else 1.0, history_size=history, bounds=PIXEL_RANGE)
        return torch.optim.LBFGS(
            [x], lr=c.lr if c.lr is not None else 1.0, max_iter=1, history_size=history,
            # max_eval defaults to max_iter * 5/4 = 1, which leaves a line search no evaluations to try.
            max_eval=25, line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0,
        )


def lbfgs_history(x: torch.Tensor) -> int:
    """L-BFGS pairs kept: 50, fewer where 50 pairs (2 vectors each, the image's size) would take
    more than ``HISTORY_BYTES`` (21 at 2048², 5 at 4096²), never fewer than 5."""
    pair_bytes = 2 * x.numel() * x.element_size()
    return max(5, min(50, HISTORY_BYTES // pair_bytes))


def _as_tensor(img: Any) -> torch.Tensor:
    """A ``1 x 3 x H x W`` float tensor from a PIL image (or a tensor, passed through)."""
    if isinstance(img, torch.Tensor):
        return (img if img.ndim == 4 else img[None]).float()
    return images.to_tensor(img)


def _weighted(weights: dict[str, float], values: dict[str, torch.Tensor]) -> torch.Tensor:
    total_w = sum(weights.values()) or 1.0
    return sum(values[n] * (w / total_w) for n, w in weights.items())
