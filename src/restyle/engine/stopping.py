"""A run's stages (:func:`stage_sizes`, :func:`stage_iterations`, :class:`Schedule`) and when a stage is finished: the
automatic stop (the default when ``--iterations`` is not given).

A stage stops when its loss has improved by less than ``tolerance`` (relative) over the last
``window`` steps, and never before ``min_steps``; a coarse-to-fine run's stages each have their own
rule (:func:`stage_rules`: looser in the finer, costlier stages). The rule reads only the history rows the loop
already reads (in batches on a GPU), so it adds no device sync. With the safeguarded L-BFGS the
rows' losses never rise, so the improvement over a window is never negative; with Adam the best
loss so far is compared, so noise does not end a run.

The same rows give the estimate of the steps left (:meth:`Plateau.steps_left`): the improvement
over a window shrinks about as a power of the step count once the composition is set, so the
step where it falls under ``tolerance`` is extrapolated from the last two windows' improvements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from restyle.spec import MULTISCALE_MIN, layer_block


def percent(fraction: float) -> str:
    """A tolerance as the stop reason writes it: one decimal (1.5%, 9.0%), two where it has them
    (``--stop-tolerance 0.01`` makes a coarse-to-fine run's first stage's 2.25%, not 2.2%)."""
    tenths = fraction * 1000
    return f"{fraction:.1%}" if abs(tenths - round(tenths)) < 1e-6 else f"{fraction:.2%}"


@dataclass(frozen=True)
class Plateau:
    """Stop when ``best[t - window] - best[t] <= tolerance * best[t]`` (``best``: the lowest loss
    so far) and ``t >= min_steps``."""

    window: int = 20
    tolerance: float = 0.01
    min_steps: int = 40

    def improvement(self, totals: Sequence[float], back: int = 0) -> float | None:
        """The relative improvement of the best loss over the window ending ``back`` rows ago."""
        end = len(totals) - back
        if end - 1 - self.window < 0:
            return None
        best_then = min(totals[: end - self.window])
        best_now = min(totals[:end])
        if not math.isfinite(best_now) or best_now <= 0:
            return None
        return (best_then - best_now) / best_now

    def reached(self, totals: Sequence[float]) -> bool:
        """Whether a stage whose rows' total losses are ``totals`` (row t: after t steps) is finished."""
        if len(totals) - 1 < max(self.min_steps, self.window):
            return False
        gain = self.improvement(totals)
        return gain is not None and gain <= self.tolerance

    def steps_left(self, totals: Sequence[float], prior: int) -> int:
        """Steps until :meth:`reached`, extrapolated from the last two windows' improvements as a
        power law of the step count (``prior`` steps in all while there are too few rows to tell),
        and blended with ``prior`` early on: the stage's steps in all are ``extrapolated^w ·
        prior^(1-w)`` with ``w = (done / min(prior, extrapolated))²`` (at most 1), so the prior
        fades as the stage reaches its length or the extrapolated end; at most ``EXTRAPOLATION_CAP``
        times the prior or the steps done, whichever is more (a slowly shrinking improvement
        extrapolates far). Blending put the time left a quarter of the way in at 0.65-1.5x the
        actual against 0.30-3.5x unblended (``bench/eta.py`` on the 256 px panel)."""
        done = len(totals) - 1
        now, before = self.improvement(totals), self.improvement(totals, self.window)
        floor = max(0, self.min_steps - done)
        if now is None or before is None or now >= before or done <= self.window:
            return max(floor, prior - done)
        if now <= self.tolerance:
            return floor
        power = min(4.0, max(0.5, math.log(before / now) / math.log(done / (done - self.window))))
        extrapolated = done * (now / self.tolerance) ** (1 / power)
        w = min(1.0, done / max(1.0, min(prior, extrapolated))) ** 2
        steps = min(extrapolated**w * max(prior, done) ** (1 - w), EXTRAPOLATION_CAP * max(prior, done))
        return max(floor, math.ceil(steps) - done)

    def describe(self) -> str:
        return (f"loss improved under {percent(self.tolerance)} over the last {self.window} steps "
                f"(at least {self.min_steps} steps a stage)")


@dataclass(frozen=True)
class Rule:
    """One number of the automatic stop: its value, why it is that (one line) and where the
    measurement behind it is (a ``bench/`` record or a ``docs/`` section)."""

    name: str
    value: float | tuple[int, ...]
    reason: str
    measured_in: str


#: The automatic stop's numbers, each once: tolerances, minimum steps, usual lengths (priors), caps.
RULES: Mapping[str, Rule] = MappingProxyType({rule.name: rule for rule in (
    Rule("WINDOW", 20, "steps over which a stage's best loss must improve by its tolerance",
         "docs/stopping.md#the-rule"),
    Rule("TOLERANCE", 0.02,
         "one-stage run from the photo (up to 511 px): 24 cells at 256 px stopped after a median 166 steps "
         "(0.55 of -n 300), content +1.4% (worst +2.9%), style +2.9% (worst +13.7%, within -n 300's own "
         "scatter of up to 18% from photos moved by 1/255); 2.5% moved the worst cell's style 19% off",
         "bench/panel/results/ttq/tol02-amx.jsonl"),
    Rule("MIN_STEPS", 40, "the fewest steps a one-stage run or a first stage takes", "docs/stopping.md#the-rule"),
    Rule("COARSE_TOLERANCE", 0.045,
         "a coarse-to-fine run's first stage only sets the composition: run to 3% or 5% it left the 512 px "
         "stage the same 78-80 steps (cut at 80 steps, 121); with FINE_TOLERANCE 0.41 of -n 300's time at 512 px (content +2.7%), "
         "0.65 at 1024 px (+2.7%)",
         "bench/panel/results/ttq/panel512-stages.jsonl"),
    Rule("FINE_TOLERANCE", 0.09,
         "each finer stage starts from the coarser result plus the photo's finer detail: its 512 px stage "
         "took 59-70 steps against 150; a 36% rule for the 1024 px stage cost 5.8% content",
         "bench/panel/results/ttq/panel1024.jsonl"),
    Rule("FINE_MIN_STEPS", 20, "the fewest steps a finer stage (or the stage after a lead) takes",
         "docs/stopping.md#the-rule"),
    Rule("WARM_TOLERANCE", 0.015,
         "a run from a start near its end (a warm video frame, a refined fast model's output): at 3% the "
         "strip a pan reveals was left half painted",
         "docs/video.md#the-pixels-a-pan-reveals"),
    Rule("PYRAMID_TOLERANCE", 0.015,
         "a --pyramid first stage keeps the 1.5% it was measured with: its pictures are already softer",
         "bench/panel/results/ttq/pyramid256.jsonl"),
    Rule("LEAD_TOLERANCE", 0.06, ("the output's own stage after a lead stage makes all of the style: at 4.5% it took 0.43 of -n 300's "
          "time, at 9% 0.32 with style +5.1%"),
         "bench/panel/results/ttq/lead24-amx.jsonl"),
    Rule("AUTO_CAP", 600,
         "the first stage's step cap under the automatic stop (each finer stage half the one before): a guard "
         "against a loss that never settles, not a target",
         "docs/stopping.md#the-rule"),
    Rule("EXTRAPOLATION_CAP", 1.3,
         "the time left's steps in all at most this times the prior or the steps done: on 108 -n 300 runs cut "
         "at the 2% rule, estimates under 0.5x or over 2x from a quarter in fell from 46 runs to 21 (at most "
         "3.9x instead of 13x), the median error over a run from 18-24% to 14-19%",
         "bench/eta.py --truncate; docs/stopping.md#the-rule"),
    Rule("PRIOR_STEPS", (160, 130, 62),
         "usual steps of a one-stage run, a coarse-to-fine first stage, a finer stage (panel medians 166, 130, "
         "62): 160 gave the lowest median error in four of five --truncate sets; 62 for a finer stage put the "
         "time left at 0.89-1.20 of the actual (50: 0.60-0.87)",
         "bench/eta.py; docs/stopping.md#the-rule"),
    Rule("PYRAMID_PRIOR_STEPS", (160, 105),
         "usual steps of a --pyramid first stage, one-stage and coarse-to-fine (medians 158.5 of 24 cells at "
         "256 px, 95-114 of 4 at 512 px)",
         "bench/panel/results/ttq/pyramid256.jsonl; bench/panel/results/ttq/pyramid512.jsonl"),
    Rule("WARM_PRIOR_STEPS", 62,
         "usual steps of a video frame warm from the one before (median of two 16-frame clips; from the photo "
         "about 170)",
         "docs/video.md#speed-on-a-2-core-cpu"),
    Rule("LEAD_MIN", 192,
         "the smallest one-stage automatic run --lead-stage leads (0.37 of -n 300's time, but 5 of 24 cells "
         "18-40% worse in style: off by default)",
         "docs/stopping.md#a-lead-stage-at-half-the-pixels---lead-stage"),
    Rule("LEAD_PRIOR_STEPS", (88, 64),
         "usual steps of a lead stage and the output's stage after it (medians of 12 cells with block4-5 light; "
         "81 and 74 with every layer light)",
         "bench/panel/results/ttq/lead-amx.jsonl"),
    Rule("LEAD_STYLE", 0.15,
         "the lead's weight on the style layers past LEAD_FULL_BLOCK (the arrangement): at full weight the lead "
         "cost 11-15% content, at 0.4x 7-8%",
         "bench/panel/results/ttq/lead256.jsonl"),
    Rule("LEAD_FULL_BLOCK", 3,
         "the last block whose style layers (colour and texture) keep full weight in a lead: with every layer "
         "at 0.15x pictures came out up to 22% less saturated, 30% less contrasted",
         "bench/panel/results/ttq/lead24-amx.jsonl"),
    Rule("LEAD_SIDE", 64, "the shortest side of a lead stage's images: well above block5_conv1's 16 px stride",
         "docs/stopping.md#a-lead-stage-at-half-the-pixels---lead-stage"),
)})


def _number(name: str) -> float:
    value = RULES[name].value
    assert not isinstance(value, tuple), name
    return value


def _count(name: str) -> int:
    value = RULES[name].value
    assert isinstance(value, int), name
    return value


def _counts(name: str) -> tuple[int, ...]:
    value = RULES[name].value
    assert isinstance(value, tuple), name
    return value


#: The rule of a one-stage run from the photo; the other stages' tolerances scale with its own.
RULE = Plateau(window=_count("WINDOW"), tolerance=_number("TOLERANCE"), min_steps=_count("MIN_STEPS"))
EXTRAPOLATION_CAP = _number("EXTRAPOLATION_CAP")
COARSE_TOLERANCE = _number("COARSE_TOLERANCE")
FINE_TOLERANCE = _number("FINE_TOLERANCE")
WARM_TOLERANCE = _number("WARM_TOLERANCE")
PYRAMID_TOLERANCE = _number("PYRAMID_TOLERANCE")
FINE_MIN_STEPS = _count("FINE_MIN_STEPS")
AUTO_CAP = _count("AUTO_CAP")
PRIOR_STEPS = _counts("PRIOR_STEPS")
PYRAMID_PRIOR_STEPS = _counts("PYRAMID_PRIOR_STEPS")
WARM_PRIOR_STEPS = _count("WARM_PRIOR_STEPS")
LEAD_MIN = _count("LEAD_MIN")
LEAD_PRIOR_STEPS = _counts("LEAD_PRIOR_STEPS")
LEAD_STYLE = _number("LEAD_STYLE")
LEAD_FULL_BLOCK = _count("LEAD_FULL_BLOCK")
LEAD_TOLERANCE = _number("LEAD_TOLERANCE")
LEAD_SIDE = _count("LEAD_SIDE")


def lead_size(final: int) -> int:
    """The longest side of the lead stage of a run to ``final`` px: half its pixels."""
    return round(final / math.sqrt(2))


def tolerances(tolerance: float = RULE.tolerance) -> dict[str, float]:
    """Each kind of stage's tolerance for ``--stop-tolerance tolerance``: the defaults above,
    scaled by ``tolerance / RULE.tolerance`` (at most 0.5)."""
    scale = tolerance / RULE.tolerance
    kinds = {"photo": RULE.tolerance, "coarse": COARSE_TOLERANCE, "fine": FINE_TOLERANCE, "lead": LEAD_TOLERANCE,
             "warm": WARM_TOLERANCE, "pyramid": PYRAMID_TOLERANCE}
    return {kind: min(0.5, value * scale) for kind, value in kinds.items()}


def stage_rules(stages: int, tolerance: float = RULE.tolerance, first: str = "photo",
                lead: bool = False) -> list[Plateau]:
    """The stop rule of each of ``stages`` coarse-to-fine stages for ``--stop-tolerance tolerance``;
    a one-stage run's is the ``first`` kind's (``photo``, ``warm`` or ``pyramid``). After a lead
    stage (``lead``) the output's own stage makes all of the style: a rule between the first and
    finer stages' rules."""
    kinds = tolerances(tolerance)
    if stages <= 1:
        return [dataclasses.replace(RULE, tolerance=kinds[first])]
    coarse = dataclasses.replace(RULE, tolerance=kinds["coarse"])
    fine = Plateau(window=RULE.window, tolerance=kinds["lead" if lead else "fine"], min_steps=FINE_MIN_STEPS)
    return [coarse] + [fine] * (stages - 1)


def stage_sizes(final: int, scales: Sequence[int] | None = None, multiscale: bool = False) -> list[int]:
    """The longest side of each optimisation stage: ``scales`` when given, else (``multiscale``)
    ``final`` halved while the half is still >= 256 px, else just ``final``."""
    if scales:
        return [int(s) for s in scales]
    sizes = [int(final)]
    if multiscale:
        while sizes[0] // 2 >= MULTISCALE_MIN:
            sizes.insert(0, sizes[0] // 2)
    return sizes


def stage_iterations(iterations: int, stages: int) -> list[int]:
    """Steps of each of ``stages`` coarse-to-fine stages: ``iterations`` for the first, each later
    stage half the one before, rounded up (300 at 2048 px: 300, 150, 75, 38). The coarse stage
    sets the composition; a finer one starts from its upsampled result and costs 4x as much a
    step (the measurements behind the rule: docs/quality.md)."""
    return [-(-int(iterations) // 2**k) for k in range(stages)]


class Schedule:
    """A run's stages: their longest sides, step caps and stop rules (``iterations`` None: the
    automatic stop), and the estimate of the rows and seconds left as the rows come in."""

    def __init__(self, sizes: Sequence[int], iterations: int | None, tolerance: float = RULE.tolerance,
                 lead: bool = False, warm: bool = False, pyramid: bool = False):
        self.auto = iterations is None
        #: Whether the run starts from an image near its end (a video frame's warm start, a fast
        #: model's output to refine): a shorter one-stage prior for the time left; the same rules.
        self.warm = warm
        #: Whether the run starts with a lead stage (``--lead-stage``; ``LEAD_MIN``; the engine says where it may).
        self.lead = lead and self.auto and len(sizes) == 1 and sizes[0] >= LEAD_MIN
        self.sizes = [lead_size(sizes[0]), *sizes] if self.lead else list(sizes)
        #: Whether the first stage steps its image as a pyramid (:mod:`restyle.nn.pyramid`): an
        #: automatic run from the photo without a lead stage.
        self.pyramid = pyramid and self.auto and not warm and not self.lead
        first = AUTO_CAP if iterations is None else int(iterations)
        #: Steps of each stage: the first ``iterations`` (or the cap), each later half the one before.
        self.caps = stage_iterations(first, len(self.sizes))
        #: Each stage's stop rule (None with ``iterations``: every stage runs its cap).
        kind = "warm" if warm else "pyramid" if self.pyramid else "photo"
        self.rules: list[Plateau | None] = (list(stage_rules(len(self.sizes), tolerance, kind, self.lead))
                                            if self.auto else [None] * len(self.sizes))

    def style_factors(self, k: int, layers: Sequence[str]) -> dict[str, float]:
        """The factor on each style layer's weight in stage ``k``: in a lead stage ``LEAD_STYLE``
        for the layers past block ``LEAD_FULL_BLOCK`` (:func:`restyle.spec.layer_block`), 1 for
        the others; no factors in any other stage."""
        if not (self.lead and k == 0):
            return {}
        return {n: 1.0 if layer_block(n) <= LEAD_FULL_BLOCK else LEAD_STYLE for n in layers}

    @property
    def carry_detail(self) -> bool:
        """Whether a finer stage starts from the coarser result with the photo's finer detail added
        (the automatic stop's schedule); with ``iterations`` from the coarser result alone, as before."""
        return self.auto

    def describe(self) -> str:
        """The rules in words (the run record's stop reason)."""
        first = self.rules[0]
        assert first is not None
        if len(self.rules) == 1:
            return first.describe()
        fine = self.rules[1]
        assert fine is not None
        lead = (f" ({self.sizes[0]} px, the style layers past block{LEAD_FULL_BLOCK} at {LEAD_STYLE:g}x their weight)"
                if self.lead else "")
        return (f"loss improved under {percent(first.tolerance)} over the last {first.window} steps in the first "
                f"stage{lead} (at least {first.min_steps} steps), under {percent(fine.tolerance)} in each finer stage "
                f"(at least {fine.min_steps})")

    def prior(self, k: int) -> int:
        if self.lead:
            return min(self.caps[k], LEAD_PRIOR_STEPS[k])
        if self.warm and len(self.sizes) == 1:
            return min(self.caps[k], WARM_PRIOR_STEPS)
        which = (0 if len(self.sizes) == 1 else 1) if k == 0 else 2
        if self.pyramid and k == 0:
            return min(self.caps[k], PYRAMID_PRIOR_STEPS[which])
        return min(self.caps[k], PRIOR_STEPS[which])

    def planned_rows(self) -> int:
        """History rows expected at the start (progress bars): every step and the final loss."""
        if not self.auto:
            return sum(self.caps) + 1
        return sum(self.prior(k) for k in range(len(self.sizes))) + 1

    def estimate(self, k: int, done_before: int, totals: Sequence[float], seconds: float) -> tuple[int, float | None]:
        """(rows expected in all, seconds left) while stage ``k`` runs: ``done_before`` rows in the
        stages before it, ``totals`` its own rows' losses so far, ``seconds`` spent in it. Later
        stages are expected to take their prior steps, each at the pace of this one scaled by pixels."""
        done = len(totals) - 1
        later = [(self.caps[j] if not self.auto else self.prior(j), (self.sizes[j] / self.sizes[k]) ** 2)
                 for j in range(k + 1, len(self.sizes))]
        rule = self.rules[k]
        if rule is not None:
            left = min(self.caps[k] - done, rule.steps_left(totals, self.prior(k)))
            # the rows made, those to come, and the final row (made last, once the rule is reached)
            rows = done_before + len(totals) + left + sum(n for n, _ in later) + (1 if left or later else 0)
        else:
            left = self.caps[k] - done
            rows = self.planned_rows()
        if done <= 0:
            return rows, None
        pace = seconds / done
        return rows, pace * (left + sum(n * cost for n, cost in later))


def time_limited(rows: int, left: float | None, eta: float | None, done: int,
                 limit_left: float) -> tuple[int, float | None]:
    """(rows in all, seconds left) to show when a time limit (``--time-limit``) is ``limit_left``
    seconds away: the estimate's own (``rows`` in all, of which ``done`` are made; ``left``
    seconds; ``eta`` what is shown without a limit, None under ``-n``) while it ends before the
    limit, else the limit's: the rows made by then at the estimate's pace, and the seconds to it."""
    limit_left = max(0.0, limit_left)
    if left is None or left <= limit_left:  # (an estimate at its end: nothing left either way)
        return rows, eta
    return min(rows, done + math.ceil((rows - done) * limit_left / left)), limit_left


def requested_reason(history: list[dict[str, float]], size: int | None, last: int | None, output: int,
                     why: str = "") -> str:
    """Why a run that an event handler finished (FinishNow) stopped, in words."""
    iteration = int(history[-1]["iteration"]) if history else 0
    return finished_on_request(iteration, why, (int(history[-1]["scale"]), output) if size != last else None)


def finished_on_request(iteration: int, why: str = "", stage: tuple[int, int] | None = None) -> str:
    """The words of a request's stop at ``iteration`` (numbered as the caller numbers it: a resumed server job
    words its own, from the job's first row), with the request's ``why`` and, when the request came in a
    coarser stage, ``stage``: (that stage's size, the output's)."""
    reason = f"finished on request at iteration {iteration}"
    if stage is not None:
        reason += f" (in the {stage[0]} px stage; its image upsampled to {stage[1]} px)"
    return reason + (f": {why}" if why else "")


def stop_reason(plan: Schedule, converged: int) -> str:
    """Why a run that did not fail stopped, in words (the run record keeps it)."""
    if not plan.auto:
        return f"ran the {plan.caps[0]} iterations asked for" + (" (halved in each finer stage)"
                                                                  if len(plan.caps) > 1 else "")
    if converged == len(plan.caps):
        return f"finished: {plan.describe()}"
    return (f"finished {converged} of {len(plan.caps)} stage(s) by the rule ({plan.describe()}); "
            f"the others reached their cap of {plan.caps[0]} steps (halved in each finer stage)")
