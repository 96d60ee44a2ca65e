"""A run, stage by stage: load the sources, then for each coarse-to-fine size compute the
targets (:mod:`.targets`) and optimise the image (:mod:`.loop`) against the objective
(:mod:`.objective`), then finish the output (guided filter, colour put back)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from restyle.backbone import cached_backbone
from restyle.config import Config
from restyle.engine import budget, stopping
from restyle.engine.backend import backend_flags, resolve_device, resolve_precision, weights_dtype
from restyle.engine.events import EventHandler, Finished, FinishNow, IterationHandler, Progress, Started
from restyle.engine.loop import SYNC_EVERY_CUDA, OptimizerSettings, StageRun, optimise
from restyle.engine.objective import Features, Losses, Objective, Photorealism
from restyle.engine.result import Result
from restyle.engine.stopping import LEAD_MIN, LEAD_SIDE, Plateau, Schedule, lead_size
from restyle.engine.targets import MaskImages, as_tensor, build_targets, check_image_sizes
from restyle.engine.tiles import TiledFeatures
from restyle.errors import WeightsError, notice
from restyle.io import images
from restyle.io.history import LOSS_FIELDS
from restyle.nn import controls
from restyle.nn.network import Backbone
from restyle.spec import MULTISCALE_MIN


class StyleTransfer:
    """One engine: build the backbone, compute targets once per stage, optimise the image.

    >>> st = StyleTransfer(Config(size=256))
    >>> result = st.run("photo.jpg", ["painting.jpg"])
    """

    def __init__(self, config: Config | None = None, backbone: Backbone | None = None,
                 sync_every: int | None = None):
        self.config = config if config is not None else Config()
        #: Notes of the engine itself (a fallback backbone); each run starts its notes from these.
        self.setup_notes: list[str] = []
        self.notes: list[str] = []
        self.device = resolve_device(self.config.device)
        #: Steps between host reads of the losses (rows reach ``on_iteration`` in batches of this).
        self.sync_every = sync_every if sync_every is not None else (1 if self.device.type == "cpu" else SYNC_EVERY_CUDA)
        self.loop_seconds = 0.0  # time spent in the optimisation loops (synced), for benchmarks
        self.history_pairs: int | None = None  # L-BFGS pairs the stage keeps (None: the default rule)
        self.stage_tiled = False  # whether the stage's objective is evaluated in tiles
        self.precision = resolve_precision(self.config.precision, self.device)
        self.backbone = backbone if backbone is not None else self._load_backbone()
        self.extractor = Features(self.backbone, self.device, self.precision)
        #: The current stage's objective (built by set_targets) and the images it was built from.
        self.objective: Objective | None = None
        self.content_rgb: torch.Tensor | None = None
        self.content: torch.Tensor | None = None
        self._masks = MaskImages()  # mask images, loaded once per run

    # ---- setup ------------------------------------------------------------------------------
    def _load_backbone(self) -> Backbone:
        c = self.config
        dtype = weights_dtype(self.precision)
        try:
            return cached_backbone(c.model, c.weights, c.pooling, self.device, dtype)
        except WeightsError as err:
            if not (c.model == "vgg16" and c.weights is None and c.fallback_vgg19):
                raise
            note = f"VGG16 weights unavailable ({err}); using the embedded VGG19 with the same layer names"
            notice(note)
            self.setup_notes.append(note)
            self.config = c.replace(model="vgg19")
            return cached_backbone("vgg19", None, c.pooling, self.device, dtype)

    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.extractor(image, layers)

    # ---- sources and stages -----------------------------------------------------------------
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
        final = c.size if c.size is not None else max(content_src.size)
        return [*stopping.stage_sizes(final, c.scales, c.multiscale)]

    def may_lead(self, content_src: Any, style_srcs: Sequence[Any], stages: Sequence[int], from_photo: bool) -> bool:
        """Whether the options and inputs allow the lead stage ``--lead-stage`` asks for: the default
        stages (no ``--scales``, ``--multiscale`` on, no ``--tile``), from the photo (no start image,
        which a lead would blur: a video frame's warm start, ``--refine``, ``--init``), and every image
        of the lead at least ``LEAD_SIDE`` px on its shorter side. The :class:`.stopping.Schedule`
        then leads only an automatic one-stage run of ``LEAD_MIN`` px or more."""
        c = self.config
        default_stages = c.scales is None and c.multiscale and c.tile is None
        if not (c.lead_stage and from_photo and c.init == "content" and default_stages):
            return False
        content, styles = self.resize_inputs(content_src, style_srcs, lead_size(stages[0]))
        return min(min(img.size) for img in [content, *styles]) >= LEAD_SIDE

    def resize_inputs(self, content_src: Any, style_srcs: Sequence[Any], size: int | None) -> tuple[Any, list[Any]]:
        """Content at longest side ``size``; styles at that size times ``style_scale``."""
        content_img = images.resize_longest(content_src, size)
        style_size = max(2, round(max(content_img.size) * self.config.style_scale))
        return content_img, [images.resize_longest(s, style_size) for s in style_srcs]

    # ---- targets and the objective ----------------------------------------------------------
    def set_targets(self, content_img: Any, style_imgs: Sequence[Any]) -> None:
        """Build the stage's objective from its images (see :func:`.targets.build_targets`)."""
        self.objective = None  # free the previous stage's targets (the matting Laplacian) first
        c = self.config
        # --tile / --max-memory: a stage larger than its tile is evaluated in tiles (engine/tiled.py)
        layers = [*c.content_layers, *c.style_layers]
        features = budget.stage_features(c, self.extractor, layers, content_img, self.notes)
        tile = features.tile if isinstance(features, TiledFeatures) else None
        self.stage_tiled = tile is not None
        self.history_pairs = budget.history_pairs(c, self.extractor, layers, (content_img.size[1], content_img.size[0]),
                                                 tile, self.notes)
        stage = build_targets(c, features, self._masks, self.notes, content_img, style_imgs)
        self.content_rgb, self.content = stage.content_rgb, stage.content
        self.objective = budget.stage_objective(stage.objective, features)

    def _objective(self) -> Objective:
        if self.objective is None:
            raise RuntimeError("no targets yet: call set_targets (or run) first")
        return self.objective

    @property
    def layers(self) -> list[str]:
        return self._objective().layers

    @property
    def content_losses(self) -> nn.ModuleDict:  # layer -> ContentLoss
        return self._objective().content.losses

    @property
    def style_losses(self) -> nn.ModuleDict:  # layer -> StyleLoss or GuidedStyleLoss
        return self._objective().style.losses

    @property
    def photo(self) -> Photorealism | None:  # the matting-Laplacian term (photo mode)
        return self._objective().photo

    def losses(self, x: torch.Tensor) -> Losses:
        """(total, content, style, tv, photo) for image ``x``; differentiable w.r.t. ``x``."""
        return self._objective()(x)

    def initial_image(self, start: torch.Tensor | None = None) -> torch.Tensor:
        """The first stage's start: ``start`` (an RGB ``1 x 3 x H x W`` image in [0, 1], resized to
        the stage) when given, else what ``--init`` says; grey in luminance mode, as the content."""
        c = self.config
        assert self.content is not None, "set_targets first"
        if start is not None:
            x = controls.upsample(as_tensor(start).to(self.device), _hw(self.content)).clamp(0, 1)
            return controls.gray3(controls.luminance(x)) if c.preserve_color == "luminance" else x
        if c.init == "content":
            return self.content.clone()
        if c.init == "noise":
            gen = torch.Generator().manual_seed(c.seed)
            return torch.rand(self.content.shape, generator=gen).to(self.device)
        h, w = self.content.shape[-2:]
        img = images.resize_to(images.load_image(c.init, max_pixels=c.max_pixels, role="init image"), (w, h))
        x = images.to_tensor(img).to(self.device)
        return controls.gray3(controls.luminance(x)) if c.preserve_color == "luminance" else x

    def finer_start(self, x: torch.Tensor, detail: bool) -> torch.Tensor:
        """A finer stage's start from the coarser stage's result ``x``: upsampled, and with ``detail``
        (the automatic stop's schedule) plus the stage's content detail finer than ``x`` holds
        (:func:`~restyle.nn.controls.add_detail`). On chelsea x *The Scream* at 512 px the detail
        start ended the 512 px stage's 80 steps with the evaluator's content distance 0.511
        against 0.518 from the upsampled result alone."""
        assert self.content is not None, "set_targets first"
        up = controls.upsample(x, _hw(self.content))
        return controls.add_detail(up, self.content, _hw(x)) if detail else up

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

    # ---- the run ----------------------------------------------------------------------------
    def run(
        self,
        content: Any,
        styles: Sequence[Any],
        *,
        on_event: EventHandler | None = None,
        on_iteration: IterationHandler | None = None,
        init_image: torch.Tensor | None = None,
        extra_terms: Sequence[nn.Module] = (),
    ) -> Result:
        """Optimise. ``on_event`` receives :class:`Started`, then a :class:`Progress` per history
        row, then :class:`Finished`; ``on_iteration(row, image)`` is the same rows as plain dicts.

        ``init_image`` (``1 x 3 x H x W`` in [0, 1]) replaces ``--init`` as the start; ``extra_terms``
        (modules with a ``weight``, e.g. :class:`~.objective.TemporalConsistency`) are added to
        every stage's objective (to its total only: the history's columns stay the same)."""
        with backend_flags(self.device, self.precision):
            return self._run(content, styles, on_event, on_iteration, init_image, extra_terms)

    def _run(self, content: Any, styles: Sequence[Any], on_event: EventHandler | None,
             on_iteration: IterationHandler | None, init_image: torch.Tensor | None = None,
             extra_terms: Sequence[nn.Module] = ()) -> Result:
        c = self.config
        emit = on_event or (lambda event: None)
        self.notes = list(self.setup_notes)  # a run carries no notes of the run before
        torch.manual_seed(c.seed)
        start = time.perf_counter()
        content_src, style_srcs = self.load_sources(content, styles)
        c.check_request(content_src.size)
        plan, sizes, stages = self._schedule(content_src, style_srcs, init_image)
        # the smallest stage's inputs first: refuse images too small for the layers before anything starts
        first_inputs = self.resize_inputs(content_src, style_srcs, sizes[0])
        self._check_sizes(content_src, first_inputs, sizes)
        emit(Started(plan.planned_rows(), stages, self.config.model, str(self.device), self.precision,
                     tuple(self.notes)))
        rows = _RowHandler(plan, c, emit, on_iteration, started=start)
        run = _Stages()
        for k, size in enumerate(sizes):
            run.size = size
            inputs = first_inputs if k == 0 else self.resize_inputs(content_src, style_srcs, size)
            if self._stage(k, inputs, plan, run, rows, init_image, extra_terms, start, last=k == len(sizes) - 1):
                break
        x, content_rgb = self._deliver(run, plan, content_src, sizes[-1])
        pixels = self.finish(x, content_rgb).cpu()
        image = images.to_image(pixels)
        history = run.history
        final = history[-1]["total"] if history else float("nan")
        reason = run.stopped or (
            stopping.requested_reason(history, run.size, sizes[-1], stages[-1], run.request)
            if run.request is not None else stopping.stop_reason(plan, run.converged))
        emit(Finished(max(0, len(history) - 1), final, time.perf_counter() - start, run.stopped, reason))
        return Result(image, history, self.config, list(self.notes), run.stopped, str(self.device), self.precision,
                      pixels=pixels.clamp(0, 1), stop_reason=reason)

    def _schedule(self, content_src: Any, style_srcs: Sequence[Any],
                  init_image: torch.Tensor | None) -> tuple[Schedule, list[int | None], tuple[int, ...]]:
        """The run's :class:`.stopping.Schedule`, its stages' sizes (``None``: the content's own) and
        longest sides; a note where ``--lead-stage`` or ``--pyramid`` was asked for but cannot be."""
        c = self.config
        sizes = self.stage_sizes(content_src)
        stages = tuple(int(s) if s is not None else max(content_src.size) for s in sizes)
        plan = Schedule(stages, c.iterations, c.stop_tolerance,
                        lead=self.may_lead(content_src, style_srcs, stages, init_image is None),
                        warm=init_image is not None, pyramid=c.pyramid and c.init == "content" and init_image is None)
        if plan.lead:
            sizes, stages = [plan.sizes[0], *sizes], tuple(plan.sizes)
        elif c.lead_stage and init_image is None:  # asked for, but this run cannot have one: say so
            self._note(f"--lead-stage: no lead stage in this run (it needs the automatic stop and one stage of "
                       f"{LEAD_MIN}-{2 * MULTISCALE_MIN - 1} px from the photo)")
        if c.pyramid and init_image is None and not plan.pyramid:  # asked for, but this run steps pixels
            self._note("--pyramid: this run steps pixels (the pyramid needs the automatic stop, --init content and "
                       "no lead stage)")
        return plan, sizes, stages

    def _note(self, note: str) -> None:
        notice(note)
        self.notes.append(note)

    def _check_sizes(self, content_src: Any, first_inputs: tuple[Any, list[Any]], sizes: Sequence[int | None]) -> None:
        """Refuse images too small for the layers at the first stage, and a ``--max-memory``
        budget the largest stage cannot keep."""
        c = self.config
        layers = [*c.content_layers, *c.style_layers]
        check_image_sizes(self.backbone, layers, *first_inputs)
        if c.max_memory is not None:
            width, height = content_src.size if sizes[-1] is None else images.longest_size(content_src.size, sizes[-1])
            budget.check_budget(c, self.extractor, layers, (height, width))

    def _stage(self, k: int, inputs: tuple[Any, list[Any]], plan: Schedule, run: _Stages, rows: _RowHandler,
               init_image: torch.Tensor | None, extra_terms: Sequence[nn.Module], start: float, last: bool) -> bool:
        """Stage ``k`` of the run from its ``inputs``, recorded into ``run``; whether the run ends
        here (a failure or a request)."""
        self.set_targets(*inputs)
        self._objective().extra.extend(term.to(self.device) for term in extra_terms)
        self._objective().style.reweigh(plan.style_factors(k, self._objective().style.layers))
        assert self.content is not None
        x0 = self.initial_image(init_image) if run.image is None else self.finer_start(run.image, plan.carry_detail)
        rows.begin(k, len(run.history))
        stage = self._optimise(x0, plan.caps[k], len(run.history), last, start, rows, plan.rules[k],
                               pyramid=plan.pyramid and k == 0 and not self.stage_tiled)
        run.history.extend(stage.rows)
        run.image, run.stopped, run.request = stage.image, stage.stopped, stage.request
        run.converged += stage.converged
        return bool(run.stopped) or run.request is not None

    def _deliver(self, run: _Stages, plan: Schedule, content_src: Any,
                 final_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the optimised image, the content it is finished against) at the requested size, also
        when a stage failed or a request ended the run in a coarser stage."""
        x = run.image
        assert x is not None and self.content_rgb is not None
        content_rgb = self.content_rgb
        if (run.stopped or run.request is not None) and run.size != final_size:
            content_rgb = as_tensor(self.resize_inputs(content_src, [], final_size)[0]).to(self.device)
            coarse = x
            x = controls.upsample(x, _hw(content_rgb))
            if run.request is not None and plan.carry_detail:  # as the next stage would have started
                x = controls.add_detail(x, content_rgb, _hw(coarse))
        return x, content_rgb

    def _optimise(self, x0: torch.Tensor, iterations: int, offset: int, final: bool, start: float,
                  on_row: IterationHandler | None, rule: Plateau | None = None, pyramid: bool = False) -> StageRun:
        """One stage's loop (:func:`.loop.optimise`) against :meth:`losses`; a reason to stop
        early becomes a notice and a note."""
        settings = dataclasses.replace(OptimizerSettings.from_config(self.config), history=self.history_pairs,
                                       pyramid=pyramid)
        stage = optimise(self.losses, x0, iterations=iterations,
                         optimizer=settings, sync_every=self.sync_every,
                         offset=offset, final=final, start=start, on_row=on_row, stop=rule)
        self.loop_seconds += stage.seconds
        if stage.stopped:
            notice(stage.stopped)
            self.notes.append(stage.stopped)
        return stage


@dataclass
class _Stages:
    """What a run's stages made so far: the history, the last stage's image and size, a failure or
    a handler's request (FinishNow's words), and the stages the stop rule ended."""

    history: list[dict[str, float]] = field(default_factory=list)
    image: torch.Tensor | None = None
    size: int | None = None
    stopped: str | None = None
    request: str | None = None
    converged: int = 0


@dataclass
class _RowHandler:
    """The loop's row handler: a :class:`Progress` event per row with the rows and seconds expected
    (the schedule's estimate, a time limit's), then ``on_iteration``; FinishNow from either, or the
    time limit reached, ends the run at that row."""

    plan: Schedule
    config: Config
    emit: EventHandler
    on_iteration: IterationHandler | None
    k: int = 0  # the current stage
    rows_before: int = 0  # history rows of the stages before it
    started: float = 0.0  # when it started (a time.perf_counter())
    totals: list[float] = field(default_factory=list)  # its rows' total losses

    def begin(self, k: int, rows_before: int) -> None:
        self.totals.clear()
        self.k, self.rows_before, self.started = k, rows_before, time.perf_counter()

    def __call__(self, row: dict[str, float], image: torch.Tensor) -> None:
        c = self.config
        self.totals.append(row["total"])
        total, left = self.plan.estimate(self.k, self.rows_before, self.totals, time.perf_counter() - self.started)
        eta = left if self.plan.auto else None
        if c.time_limit is not None:  # the limit may come first: fewer rows, sooner
            total, eta = stopping.time_limited(total, left, eta, self.rows_before + len(self.totals),
                                               c.time_limit - row["seconds"])
        asked: FinishNow | None = None
        try:
            self.emit(Progress(int(row["iteration"]), total, int(row["scale"]), {n: row[n] for n in LOSS_FIELDS},
                               row["seconds"], image, eta))
        except FinishNow as request:  # the row asked at is the history's last: on_iteration sees it too
            asked = request
        if asked is None and c.time_limit is not None and row["seconds"] >= c.time_limit:
            asked = FinishNow.at_time_limit(c.time_limit)
        if self.on_iteration is not None:
            self.on_iteration(row, image)
        if asked is not None:
            raise asked


def _hw(t: torch.Tensor) -> tuple[int, int]:
    """(height, width) of an image tensor."""
    return int(t.shape[-2]), int(t.shape[-1])
