"""The optimisation loop of one stage: ``optimise(losses, x0, ...)`` steps an image from ``x0``.

The losses are read to the host (a device sync) once per ``sync_every`` steps, not every
step: rows, their images and the row callback are delivered in batches. A non-finite loss is
still caught at the row where it first appears, and the image of the row before it is restored.

With a safeguarded L-BFGS (the default, :class:`restyle.nn.optim.LBFGS`), a step whose point
fails the optimiser's acceptance test is a line-search trial, not an iterate: its row holds
the last accepted image and losses, the delivered image is the last accepted one, and so the
history never shows a rise the safeguard undid. With ``ema`` the delivered image (and the
final row) is the moving average of the iterates (:class:`EMA`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from restyle.config import Config
from restyle.engine.events import FinishNow
from restyle.engine.stopping import Plateau
from restyle.io.history import LOSS_FIELDS
from restyle.nn import optim
from restyle.nn.pyramid import Pyramid

#: The box the image is optimised in: the range of the image delivered. Without it, ~5% of the
#: values leave [0, 1] and clamping the result raised its loss by a third (1.17 -> 1.55 at 256²).
PIXEL_RANGE = (0.0, 1.0)
#: Steps between host reads of the losses on a GPU (on the CPU every step: a read costs nothing
#: there), and the most memory the images of not-yet-read rows may take.
SYNC_EVERY_CUDA = 20
SNAPSHOT_BYTES = 256 * 2**20
#: The most memory the L-BFGS history may take (50 pairs up to about 1340² px, then fewer).
HISTORY_BYTES = 2 * 2**30

#: ``losses(x) -> (total, content, style, tv, photo)``, differentiable w.r.t. ``x``.
LossFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]
#: ``on_row(row, image)``: a history row and the image whose losses it holds.
RowHandler = Callable[[dict[str, float], torch.Tensor], None]


@dataclass(frozen=True)
class OptimizerSettings:
    """Which optimiser, its step size (None: 1.0 for L-BFGS, 0.02 for Adam), for L-BFGS whether to
    use torch's strong-Wolfe line search or else which safeguard, and the EMA decay."""

    name: str = "lbfgs"
    lr: float | None = None
    line_search: bool = False
    safeguard: str = "reset"  # L-BFGS without line search: see restyle.nn.optim.LBFGS; "off": fixed step
    ema: float = 0.0  # deliver the moving average of the iterates with this decay (0: the last iterate)
    history: int | None = None  # L-BFGS pairs to keep (None: lbfgs_history's rule)
    pyramid: bool = False  # L-BFGS steps the image as a pyramid (restyle.nn.pyramid); not with Adam or --line-search

    @classmethod
    def from_config(cls, config: Config) -> OptimizerSettings:
        return cls(config.optimizer, config.lr, config.line_search, config.safeguard, config.ema)


@dataclass
class StageRun:
    """What one stage's loop produced."""

    image: torch.Tensor  # the optimised image (the last good one if the loss stopped being finite)
    rows: list[dict[str, float]] = field(default_factory=list)
    stopped: str | None = None  # why it stopped early (a failure), if it did
    seconds: float = 0.0  # time in the loop itself (the final loss evaluation left out)
    converged: bool = False  # the stop rule ended it before its step cap
    #: Not None when an event handler asked to finish now (FinishNow): its words ("" for none), and
    #: ``image`` is the one it saw.
    request: str | None = None


class EMA:
    """Exponential moving average of the iterates, ``a ← d·a + (1 − d)·x``, started at zero and
    divided by ``1 − dᵗ`` (Adam's bias correction), so it is a weighted mean of the iterates seen."""

    def __init__(self, decay: float):
        self.decay, self.steps = decay, 0
        self.avg: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        self.steps += 1
        if self.avg is None:
            self.avg = torch.zeros_like(x)
        self.avg.mul_(self.decay).add_(x, alpha=1 - self.decay)

    def value(self) -> torch.Tensor:
        assert self.avg is not None, "update first"
        return self.avg / (1 - self.decay**self.steps)


def lbfgs_history(x: torch.Tensor) -> int:
    """L-BFGS pairs kept: 50, fewer where 50 pairs (2 vectors each, the image's size) would take
    more than ``HISTORY_BYTES`` (21 at 2048², 5 at 4096²), never fewer than 5. Under
    ``--max-memory`` the engine may keep fewer (:func:`restyle.engine.tiled.history_pairs`)."""
    pair_bytes = 2 * x.numel() * x.element_size()
    return max(5, min(50, HISTORY_BYTES // pair_bytes))


def make_optimizer(x: torch.Tensor, settings: OptimizerSettings,
                   iterations: int) -> optim.LBFGS | optim.Adam | torch.optim.LBFGS:
    """The optimiser of image ``x`` for a run of ``iterations`` steps: restyle's projected
    L-BFGS or Adam (kept in ``PIXEL_RANGE``), or torch's L-BFGS for the line search."""
    s = settings
    # A run of N steps stores at most N - 1 pairs: allocate no more (same iterates, less memory).
    history = max(1, min(lbfgs_history(x) if s.history is None else s.history, iterations - 1))
    if s.name == "adam":
        return optim.Adam(x, lr=s.lr if s.lr is not None else 0.02, bounds=PIXEL_RANGE)
    if not s.line_search:
        return optim.LBFGS(x, lr=s.lr if s.lr is not None else 1.0, history_size=history, bounds=PIXEL_RANGE,
                           safeguard=None if s.safeguard == "off" else s.safeguard,
                           precondition=Pyramid(tuple(x.shape)).apply if s.pyramid else None)
    return torch.optim.LBFGS(
        [x], lr=s.lr if s.lr is not None else 1.0, max_iter=1, history_size=history,
        # max_eval defaults to max_iter * 5/4 = 1, which leaves a line search no evaluations to try.
        max_eval=25, line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0,
    )


def rows_per_sync(x: torch.Tensor, sync_every: int) -> int:
    """Steps between host reads: ``sync_every``, fewer where the pending images would take
    more than ``SNAPSHOT_BYTES``."""
    image_bytes = x.numel() * x.element_size()
    return max(1, min(sync_every, SNAPSHOT_BYTES // image_bytes))


def optimise(
    losses: LossFn,
    x0: torch.Tensor,
    *,
    iterations: int,
    optimizer: OptimizerSettings,
    sync_every: int = 1,
    offset: int = 0,
    final: bool = True,
    start: float | None = None,
    on_row: RowHandler | None = None,
    stop: Plateau | None = None,
) -> StageRun:
    """``iterations`` steps from ``x0`` (or fewer: ``stop`` ends the stage once it is reached,
    checked whenever rows are read); rows numbered from ``offset``, their ``seconds`` counted
    from ``start`` (a ``time.perf_counter()``; default: now). A ``final`` stage also records the
    loss after its last step. Row i holds the losses of the image after i steps."""
    start = time.perf_counter() if start is None else start
    scale = max(x0.shape[-2:])
    x = x0.detach().clone().requires_grad_(True)
    opt = make_optimizer(x, optimizer, iterations)
    rows: list[dict[str, float]] = []
    stopped: str | None = None
    last_good = x.detach().clone()
    current: dict[str, torch.Tensor] = {}
    pending: list[tuple[int, torch.Tensor, torch.Tensor, float]] = []  # (step, losses, image, seconds)
    every = rows_per_sync(x, sync_every)
    request: str | None = None  # a handler raised FinishNow: its words

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total, *parts = losses(x)
        total.backward()
        # With a line search the closure runs several times per step; the first evaluation is
        # the loss of the image the step started from, which is what the history records.
        current.setdefault("parts", torch.stack([total.detach(), *[p.detach() for p in parts]]))
        return total

    def flush() -> int | None:
        """Record the pending rows (one host read); the step of the first non-finite one, if any.
        A handler's FinishNow ends the recording at its row (``request``)."""
        nonlocal last_good, request
        if not pending:
            return None
        read = torch.stack([p for _, p, _, _ in pending]).tolist()
        try:
            for (i, _, image, seconds), values in zip(pending, read):
                if not all(math.isfinite(v) for v in values):
                    return i
                row = {"iteration": offset + i, "scale": scale, **dict(zip(LOSS_FIELDS, values)), "seconds": seconds}
                rows.append(row)
                last_good = image
                if on_row is not None:
                    try:
                        on_row(row, image)
                    except FinishNow as asked:
                        request = asked.why
                        return None
            return None
        finally:
            pending.clear()

    guarded = isinstance(opt, optim.LBFGS) and opt.safeguard is not None
    ema = EMA(optimizer.ema) if optimizer.ema > 0 else None
    accepted_parts: torch.Tensor | None = None
    totals: list[float] = []
    steps, converged = iterations, False
    loop_start = time.perf_counter()
    for i in range(iterations):
        snapshot = x.detach().clone()  # the image after i steps, whose loss this step computes
        current.clear()
        opt.step(closure)
        if isinstance(opt, torch.optim.Optimizer):  # --line-search: torch's L-BFGS has no bounds
            with torch.no_grad():
                x.clamp_(*PIXEL_RANGE)
        parts = current["parts"]
        if guarded:
            # A rejected trial point is a line-search evaluation, not an iterate: the row holds the
            # last accepted point (its image and losses), chosen on the device.
            assert isinstance(opt, optim.LBFGS)
            accepted_parts = parts if accepted_parts is None else torch.where(opt.accepted, parts, accepted_parts)
            parts, snapshot = accepted_parts, torch.where(opt.accepted, snapshot, opt.accepted_image().detach())
        if ema is not None:
            ema.update(snapshot)
        pending.append((i, parts, snapshot, time.perf_counter() - start))
        if len(pending) >= every or i == iterations - 1:
            bad = flush()
            if bad is not None:
                stopped = (f"loss became non-finite at iteration {offset + bad}; "
                               f"kept the last good image (iteration {offset + max(bad - 1, 0)})")
                x.data.copy_(last_good)
                break
            if request is not None:  # the image of the row the handler saw, with that row the stage's last
                x.data.copy_(last_good)
                break
            if stop is not None and i < iterations - 1:
                totals.extend(r["total"] for r in rows[len(totals):])
                if stop.reached(totals):
                    steps, converged = i + 1, True
                    break
    seconds = time.perf_counter() - loop_start
    if request is not None:
        return StageRun(x.detach(), rows, None, seconds, False, request=request)
    if stopped is None and guarded:
        with torch.no_grad():  # the last step's trial point: kept only if it passes the test
            assert isinstance(opt, optim.LBFGS)
            opt.settle(losses(x)[0])
    if stopped is None and ema is not None:
        with torch.no_grad():
            ema.update(x.detach())
            x.data.copy_(ema.value())
    if stopped is None and final:
        with torch.no_grad():
            parts = torch.stack([t.detach() for t in losses(x)])
        pending.append((steps, parts, x.detach(), time.perf_counter() - start))
        if flush() is not None:
            stopped = (f"loss became non-finite after the last iteration; "
                           f"kept the image of iteration {offset + steps - 1}")
            x.data.copy_(last_good)
    elif stopped is None and not torch.isfinite(x).all():
        stopped = (f"the image became non-finite at scale {scale}; "
                       f"kept the image of iteration {offset + steps - 1}")
        x.data.copy_(last_good)
    return StageRun(x.detach(), rows, stopped, seconds, converged)
