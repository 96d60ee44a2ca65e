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
from restyle.engine.events import FinishNow, IterationHandler
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


@dataclass
class _Pending:
    """A step whose losses are not read yet: its step, its losses (on the device), its image and
    the seconds since the run started."""

    step: int
    parts: torch.Tensor
    image: torch.Tensor
    seconds: float


@dataclass
class _Recorder:
    """The rows of one stage: the pending ones, read to the host in batches (:meth:`flush`), the
    recorded ones, the last image with finite losses and a handler's FinishNow (``request``)."""

    offset: int
    scale: int
    last_good: torch.Tensor
    on_row: IterationHandler | None
    rows: list[dict[str, float]] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    request: str | None = None  # a handler raised FinishNow: its words

    def flush(self) -> int | None:
        """Record the pending rows (one host read); the step of the first non-finite one, if any.
        A handler's FinishNow ends the recording at its row (``request``)."""
        if not self.pending:
            return None
        read = torch.stack([p.parts for p in self.pending]).tolist()
        try:
            for p, values in zip(self.pending, read):
                if not all(math.isfinite(v) for v in values):
                    return p.step
                if self._record(p, values):
                    return None
            return None
        finally:
            self.pending.clear()

    def _record(self, p: _Pending, values: list[float]) -> bool:
        """Record one row; whether its handler asked to finish now."""
        row = {"iteration": self.offset + p.step, "scale": self.scale, **dict(zip(LOSS_FIELDS, values)),
               "seconds": p.seconds}
        self.rows.append(row)
        self.last_good = p.image
        if self.on_row is None:
            return False
        try:
            self.on_row(row, p.image)
        except FinishNow as asked:
            self.request = asked.why
            return True
        return False


@dataclass
class _Stepper:
    """One stage's image and optimiser: :meth:`step` takes a step and gives the losses and image
    its row records (the last accepted point under a safeguard), updating the EMA."""

    losses: LossFn
    x: torch.Tensor
    opt: optim.LBFGS | optim.Adam | torch.optim.LBFGS
    ema: EMA | None
    current: torch.Tensor | None = None  # the losses of the image the step started from
    accepted_parts: torch.Tensor | None = None

    @property
    def guarded(self) -> bool:
        return isinstance(self.opt, optim.LBFGS) and self.opt.safeguard is not None

    def closure(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        total, *parts = self.losses(self.x)
        total.backward()
        # With a line search the closure runs several times per step; the first evaluation is
        # the loss of the image the step started from, which is what the history records.
        if self.current is None:
            self.current = torch.stack([total.detach(), *[p.detach() for p in parts]])
        return total

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: (the row's losses, the row's image)."""
        snapshot = self.x.detach().clone()  # the image after i steps, whose loss this step computes
        self.current = None
        self.opt.step(self.closure)
        if isinstance(self.opt, torch.optim.Optimizer):  # --line-search: torch's L-BFGS has no bounds
            with torch.no_grad():
                self.x.clamp_(*PIXEL_RANGE)
        parts = self.current
        assert parts is not None
        if self.guarded:
            # A rejected trial point is a line-search evaluation, not an iterate: the row holds the
            # last accepted point (its image and losses), chosen on the device.
            opt = self.opt
            assert isinstance(opt, optim.LBFGS)
            acc = self.accepted_parts
            self.accepted_parts = parts if acc is None else torch.where(opt.accepted, parts, acc)
            parts, snapshot = self.accepted_parts, torch.where(opt.accepted, snapshot, opt.accepted_image().detach())
        if self.ema is not None:
            self.ema.update(snapshot)
        return parts, snapshot

    def settle(self) -> None:
        """After the last step: a safeguard's trial point kept only if it passes the test, and the
        image replaced by the EMA's."""
        if self.guarded:
            with torch.no_grad():  # the last step's trial point: kept only if it passes the test
                assert isinstance(self.opt, optim.LBFGS)
                self.opt.settle(self.losses(self.x)[0])
        if self.ema is not None:
            with torch.no_grad():
                self.ema.update(self.x.detach())
                self.x.data.copy_(self.ema.value())


@dataclass
class _Steps:
    """How the stepping ended: the steps taken, whether the rule ended it, a failure."""

    steps: int
    converged: bool = False
    stopped: str | None = None


def _run_steps(stepper: _Stepper, rec: _Recorder, iterations: int, every: int, start: float,
               stop: Plateau | None) -> _Steps:
    """Step up to ``iterations`` times, reading the rows every ``every`` steps; stop at a
    non-finite loss (the last good image restored), a handler's request, or ``stop``'s rule."""
    totals: list[float] = []
    x = stepper.x
    for i in range(iterations):
        parts, snapshot = stepper.step()
        rec.pending.append(_Pending(i, parts, snapshot, time.perf_counter() - start))
        if not (len(rec.pending) >= every or i == iterations - 1):
            continue
        bad = rec.flush()
        if bad is not None:
            x.data.copy_(rec.last_good)
            return _Steps(iterations, stopped=(f"loss became non-finite at iteration {rec.offset + bad}; "
                                               f"kept the last good image (iteration {rec.offset + max(bad - 1, 0)})"))
        if rec.request is not None:  # the image of the row the handler saw, with that row the stage's last
            x.data.copy_(rec.last_good)
            return _Steps(iterations)
        if stop is not None and i < iterations - 1:
            totals.extend(r["total"] for r in rec.rows[len(totals):])
            if stop.reached(totals):
                return _Steps(i + 1, converged=True)
    return _Steps(iterations)


def _finish(stepper: _Stepper, rec: _Recorder, ended: _Steps, final: bool, start: float) -> str | None:
    """After the steps of a stage that did not fail: settle the image and, in a ``final`` stage,
    record the loss after its last step; a failure, if any (the last good image restored)."""
    x, steps = stepper.x, ended.steps
    stepper.settle()
    if final:
        with torch.no_grad():
            parts = torch.stack([t.detach() for t in stepper.losses(x)])
        rec.pending.append(_Pending(steps, parts, x.detach(), time.perf_counter() - start))
        if rec.flush() is None:
            return None
        stopped = (f"loss became non-finite after the last iteration; "
                   f"kept the image of iteration {rec.offset + steps - 1}")
    elif not torch.isfinite(x).all():
        stopped = (f"the image became non-finite at scale {rec.scale}; "
                   f"kept the image of iteration {rec.offset + steps - 1}")
    else:
        return None
    x.data.copy_(rec.last_good)
    return stopped


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
    on_row: IterationHandler | None = None,
    stop: Plateau | None = None,
) -> StageRun:
    """``iterations`` steps from ``x0`` (or fewer: ``stop`` ends the stage once it is reached,
    checked whenever rows are read); rows numbered from ``offset``, their ``seconds`` counted
    from ``start`` (a ``time.perf_counter()``; default: now). A ``final`` stage also records the
    loss after its last step. Row i holds the losses of the image after i steps."""
    start = time.perf_counter() if start is None else start
    x = x0.detach().clone().requires_grad_(True)
    stepper = _Stepper(losses, x, make_optimizer(x, optimizer, iterations),
                       EMA(optimizer.ema) if optimizer.ema > 0 else None)
    rec = _Recorder(offset, max(x0.shape[-2:]), x.detach().clone(), on_row)
    loop_start = time.perf_counter()
    ended = _run_steps(stepper, rec, iterations, rows_per_sync(x, sync_every), start, stop)
    seconds = time.perf_counter() - loop_start
    if rec.request is not None:
        return StageRun(x.detach(), rec.rows, None, seconds, False, request=rec.request)
    stopped = ended.stopped if ended.stopped is not None else _finish(stepper, rec, ended, final, start)
    return StageRun(x.detach(), rec.rows, stopped, seconds, ended.converged)
