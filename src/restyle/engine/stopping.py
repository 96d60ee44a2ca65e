"""When a stage is finished: the automatic stop (the default when ``--iterations`` is not given).

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
from collections.abc import Sequence
from dataclasses import dataclass

from restyle.nn import controls
from restyle.spec import layer_block


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
        fades as the stage reaches its length or the extrapolated end. On the 256 px demo (1%, 20
        steps) the extrapolation alone after 60, 80 and 100 steps was 118, 192 and 177 steps for a
        stop at 187; a geometric decay gave 98, 141 and 152. Replayed on the 24 runs of the 256 px
        panel (``bench/eta.py``), the time left a quarter of the way into a run was 0.30-3.5x the
        time actually left (median 0.74) from the extrapolation alone, 0.65-1.5x (median 1.01)
        blended; the median error over a run fell from 24% to 18% (``|log|`` 0.213 to 0.167). The
        steps in all are at most ``EXTRAPOLATION_CAP`` times the prior or the steps done, whichever
        is more: where a window's improvement shrinks slowly the power comes out small and the
        extrapolation far (up to 13x the time actually left, replayed)."""
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


#: The automatic stop's rule in a one-stage run from the photo (every output up to 511 px). On the
#: 24 cells of the 256 px panel (docs/stopping.md), run fresh against today's 300 steps: 2% stopped
#: after a median of 166 steps (0.55 of 300; the evaluator's content distance +1.4%, worst +2.9%;
#: style +2.9%, worst +13.7%; fine detail +0.6%), 1.5% after 191 (0.64; +1.1%, +2.0%; +2.5%,
#: +6.7%). Replayed on four sets of 300-step runs (two machines, photos moved by 1/255, 12 photos
#: outside the panel) 2% stopped at 0.55-0.60 of the steps with the medians at most 1.8% (content)
#: and 5.0% (style) off, upper bounds; 2.5% moved the worst cell's style 19% off. Today's own run
#: repeated from photos moved by 1/255 ends up to 18% off in style on its worst cell, so the worst
#: cells' figures are mostly scatter.
RULE = Plateau(window=20, tolerance=0.02, min_steps=40)
#: The most steps in all :meth:`Plateau.steps_left` expects, as a multiple of the stage's prior or
#: the steps done, whichever is more. Replayed (``bench/eta.py --truncate``) on 108 runs of ``-n
#: 300`` at 256 px cut where the 2% rule stops them (two machines, photos moved by 1/255, photos
#: outside the panel), the time left shown from a quarter of a run on was at some row under half
#: or over twice the time actually left in 46 runs without the cap (up to 13x: "about 1:30 left"
#: with 10 s to go), in 21 with it (at most 3.9x; with the one-stage prior of 160 below), and the
#: median error over a run fell in every set (18-24% to 14-19%).
EXTRAPOLATION_CAP = 1.3
#: Each other kind of stage's tolerance under the default ``--stop-tolerance`` (which sets
#: ``RULE``'s; any other value scales all of these in proportion, :func:`tolerances`).
#: A coarse-to-fine run (512 px and up): the first stage at ``COARSE_TOLERANCE`` (it only sets the
#: composition; a finer stage's loss starts again from about 15x its end whatever the first
#: stage's did: run to 3% or 5% it took the 512 px stage the same 78-80 steps, cut at 80 steps it
#: took 121), each finer stage at ``FINE_TOLERANCE`` and never before ``FINE_MIN_STEPS`` (it starts
#: from the coarser result with the photo's finer detail added). On the 512 px 2x2 panel
#: (docs/stopping.md) this schedule took 0.41 of ``-n 300``'s time (its 512 px stage 59-70 steps
#: against 150), the content distance 2.7% from today's; at 1024 px 0.65 (+2.7%), where a 36% rule
#: for the 1024 px stage cost 5.8%.
COARSE_TOLERANCE = 0.045
FINE_TOLERANCE = 0.09
#: A one-stage run from a start image near its end (a video frame warm from the one before, a fast
#: model's output refined) and a first stage stepped as a pyramid (``--pyramid``) keep the 1.5% they
#: were measured with: a video frame at a looser rule leaves the strip a pan reveals unpainted
#: (docs/video.md); the pyramid's pictures are already softer than the pixels' (docs/stopping.md).
WARM_TOLERANCE = 0.015
PYRAMID_TOLERANCE = 0.015
FINE_MIN_STEPS = 20
#: Step cap of the first stage with the automatic stop (each finer stage half the one before): a
#: guard against a loss that never settles, not a target.
AUTO_CAP = 600
#: Steps a stage is expected to take before its own rows can tell: a one-stage run's, a
#: coarse-to-fine run's first stage, a finer stage (the 512 and 1024 px panels' medians, 130 and
#: 62). With 50 for a finer stage the time left shown during the 512 and 1024 px panel runs was a
#: median 0.60-0.87 of the time actually left; with 62, 0.89-1.20 (``bench/eta.py``). A one-stage
#: run under the 2% rule takes a median of 166 steps (the 256 px panel). With the cap above, 160
#: gave the lowest median error over a run in four of the five sets of ``bench/eta.py --truncate``
#: (14-19%, against 16-21% with 150, and 18-24% with 150 and no cap); the time left shown a quarter
#: of the way in was 0.89-1.04x the time left (the sets' medians).
PRIOR_STEPS = (160, 130, 62)
#: The same for a first stage stepped as a pyramid (``--pyramid``): a one-stage run's
#: and a coarse-to-fine run's first stage (medians of the 256 px panel's 24 cells, 158.5 steps, and
#: of the 512 px panel's 4 first stages, 95-114).
PYRAMID_PRIOR_STEPS = (160, 105)
#: Steps a one-stage run from a start image near its end is expected to take: a video frame that
#: starts from the one before, warped (median of the later frames of two 16-frame 256x144 clips,
#: docs/video.md), where a run from the photo takes about 170. Such a frame keeps the 1.5% rule
#: (``WARM_TOLERANCE``): at twice that (3%, at least 20 steps) the clips took 0.44-0.48 of ``-n 100``'s steps
#: instead of 0.58-0.65, but the strip a pan reveals each frame was left half painted (the loss is
#: the whole frame's, and a small new region moves it little), at 512x288 plainly.
WARM_PRIOR_STEPS = 62
#: With ``--lead-stage`` (off by default) an automatic run that would be one stage of ``LEAD_MIN`` px
#: or more (outputs up to 511 px) first runs a *lead* stage at ``1/√2`` of its side (half its
#: pixels, half the cost of a step) with the style layers past block ``LEAD_FULL_BLOCK`` (block4_conv1,
#: block5_conv1: the arrangement) at ``LEAD_STYLE`` times their weight and the shallower ones (colour
#: and texture) at theirs, stopped by the first-stage rule, then its own size from the lead's result
#: with the photo's finer detail added, stopped at ``LEAD_TOLERANCE``. The
#: lead sets the composition with the photo's content; the deep style is made at the output's own
#: scale. With every style layer at 0.15x in the lead (24 cells at 256 px, docs/stopping.md) it took
#: 0.36 of ``-n 300``'s time (the one-stage 1.5% rule 0.61), content +0.4% and style +2.5% in the median,
#: but a few pictures came out paler (saturation up to 22% and contrast up to 30% lower); with the
#: shallow layers at full weight (all 24 cells) the worst were 10% and 11% lower, content +3.0% and
#: style +3.5% in the median, but 5 cells 18-40% worse in style than today's, 3 of them again on
#: photos moved by 1/255 (smoother pictures, fewer fine strokes): hence not the default. At 4.5% the
#: 256 px stage took 0.43, at 9% 0.32 with style +5.1%; a lead at full style weight cost 11-15%
#: content, at 0.4x 7-8%; a 128 px lead 7-9% whatever its style weight.
LEAD_MIN = 192
#: The steps a lead stage and the output's own stage after it are expected to take (the medians of
#: the 12 cells measured with block4-5 light, docs/stopping.md; with every layer light they were 81 and 74).
LEAD_PRIOR_STEPS = (88, 64)
LEAD_STYLE = 0.15
#: The last block whose style layers keep their full weight in a lead stage (colour and texture).
LEAD_FULL_BLOCK = 3
#: The tolerance of the output's own stage after a lead stage.
LEAD_TOLERANCE = 0.06
#: The shortest side any image of a lead stage may have (else the run is one stage): well above
#: block5_conv1's 16 px stride.
LEAD_SIDE = 64


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
        self.caps = controls.stage_iterations(first, len(self.sizes))
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
    reason = f"finished on request at iteration {int(history[-1]['iteration']) if history else 0}"
    if size != last:
        reason += f" (in the {int(history[-1]['scale'])} px stage; its image upsampled to {output} px)"
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
