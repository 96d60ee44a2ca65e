"""The automatic stop: a stage ends when its loss stops improving, never before a minimum number of
steps, and ``-n N`` still forces N; stopping never changes the steps taken before it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from restyle.config import Config
from restyle.engine import StyleTransfer, loop
from restyle.engine.events import Finished, Progress, Started
from restyle.engine.loop import OptimizerSettings, optimise
from restyle.engine.stopping import (
    EXTRAPOLATION_CAP,
    FINE_MIN_STEPS,
    LEAD_STYLE,
    LEAD_TOLERANCE,
    RULE,
    WARM_PRIOR_STEPS,
    WARM_TOLERANCE,
    Plateau,
    Schedule,
)
from restyle.errors import ConfigError

pytestmark = pytest.mark.numeric

FP32 = dict(device="cpu", precision="fp32")


def test_the_rule_stops_on_a_plateau_and_not_while_the_loss_falls():
    rule = Plateau(window=10, tolerance=0.01, min_steps=20)
    falling = [100.0 * 0.95**t for t in range(200)]  # 5% a step: never a plateau
    assert not any(rule.reached(falling[: t + 1]) for t in range(len(falling)))
    flat = [10.0 - 0.001 * t for t in range(60)]  # 0.1% over 10 steps
    assert [t for t in range(60) if rule.reached(flat[: t + 1])][0] == 20  # the minimum, not before


def test_the_rule_reads_the_best_loss_so_far_so_noise_does_not_end_a_stage():
    rule = Plateau(window=10, tolerance=0.01, min_steps=10)
    noisy = [100.0 / (1 + t) + (5.0 if t % 2 else 0.0) for t in range(40)]  # falling fast, jumping up and down
    assert not any(rule.reached(noisy[: t + 1]) for t in range(len(noisy)))


def test_the_estimate_of_steps_left_shrinks_to_zero_as_the_stop_nears():
    rule = Plateau(window=20, tolerance=0.01, min_steps=40)
    losses = [2.0 + 40.0 / (1 + t) ** 1.5 for t in range(400)]
    stop = next(t for t in range(400) if rule.reached(losses[: t + 1]))
    guesses = [t + rule.steps_left(losses[: t + 1], prior=150) for t in (60, 100, stop - 10)]
    assert all(abs(g - stop) <= 0.5 * stop for g in guesses)
    assert rule.steps_left(losses[: stop + 1], prior=150) == 0


def test_a_wrong_prior_fades_as_the_stage_nears_its_stop():
    rule = Plateau(window=20, tolerance=0.01, min_steps=40)
    losses = [2.0 + 40.0 / (1 + t) ** 1.5 for t in range(400)]
    stop = next(t for t in range(400) if rule.reached(losses[: t + 1]))
    prior = 3 * stop  # the stage ends far sooner than stages usually do
    errors = [abs(t + rule.steps_left(losses[: t + 1], prior=prior) - stop) for t in (50, 70, stop - 10, stop - 1)]
    assert errors == sorted(errors, reverse=True) and errors[0] < prior - stop
    assert errors[-2] <= 0.3 * stop and errors[-1] <= 0.05 * stop


def test_the_estimate_never_runs_far_past_the_stages_usual_length():
    # a loss whose improvement shrinks slowly: extrapolated as a power law it would end hundreds of steps on
    rule = Plateau(window=20, tolerance=0.02, min_steps=40)
    losses = [1.0 + 9.0 * 0.997**t for t in range(600)]
    prior = 160
    totals = [t + rule.steps_left(losses[: t + 1], prior=prior) for t in range(41, 400, 10)]
    assert all(total <= math.ceil(EXTRAPOLATION_CAP * max(prior, t)) for t, total in zip(range(41, 400, 10), totals))
    assert totals == sorted(totals)  # and it follows a stage that runs long instead of staying put


def test_a_stage_stops_when_its_loss_settles_and_says_so():
    target = torch.full((1, 3, 8, 8), 0.3)

    def losses(x: torch.Tensor):
        total = (x - target).pow(2).sum() + 1.0  # the minimum is 1: a plateau after a few steps
        zero = torch.zeros(())
        return total, total, zero, zero, zero

    run = optimise(losses, torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), iterations=500,
                   optimizer=OptimizerSettings(), stop=Plateau(window=5, tolerance=1e-3, min_steps=15))
    assert run.converged and 15 <= len(run.rows) - 1 < 50
    assert run.rows[-1]["total"] == pytest.approx(1.0, abs=1e-4)
    forced = optimise(losses, torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), iterations=40,
                      optimizer=OptimizerSettings())
    assert not forced.converged and len(forced.rows) == 41


def test_iterations_auto_is_the_default_and_n_forces_the_count():
    assert Config().iterations is None
    assert Config.from_text({"iterations": "auto"}).iterations is None
    assert Config.from_text({"iterations": "300"}).iterations == 300
    with pytest.raises(ConfigError):
        Config(iterations=-1)
    assert Schedule([256], None).rules == [RULE]
    forced = Schedule([256, 512], 300)
    assert forced.caps == [300, 150] and forced.rules == [None, None] and forced.planned_rows() == 451
    assert not forced.carry_detail


def test_a_coarse_to_fine_run_stops_its_finer_stages_sooner():
    coarse, fine, finest = Schedule([256, 512, 1024], None).rules
    assert coarse is not None and fine is not None and finest is not None
    assert RULE.tolerance < coarse.tolerance < fine.tolerance == finest.tolerance
    assert fine.min_steps == finest.min_steps == FINE_MIN_STEPS < coarse.min_steps
    # a lower --stop-tolerance runs every stage longer
    tighter = Schedule([256, 512], None, tolerance=RULE.tolerance / 2).rules
    assert all(t is not None and r is not None and t.tolerance < r.tolerance for t, r in zip(tighter, [coarse, fine]))


def test_the_stop_reason_gives_each_tolerance_with_the_digits_it_has():
    assert "under 2.0% over the last 20 steps" in Schedule([256], None).describe()
    default = Schedule([256, 512], None).describe()
    assert "under 4.5% over" in default and "under 9.0% in each finer stage" in default
    halved = Schedule([256, 512], None, tolerance=0.01).describe()  # every stage's tolerance halved
    assert "under 2.25% over" in halved and "under 4.5% in each finer stage" in halved


def test_a_finer_stage_starts_with_the_photos_finer_detail(content: Path, style: Path):
    st = StyleTransfer(Config(**FP32, size=64, scales=[32, 64]))
    st.set_targets(*st.load_inputs(content, [style]))
    assert st.content is not None
    coarse = torch.nn.functional.interpolate(st.content, size=(st.content.shape[-2] // 2, st.content.shape[-1] // 2),
                                             mode="area")
    plain, detailed = st.finer_start(coarse, detail=False), st.finer_start(coarse, detail=True)
    assert plain.shape == detailed.shape == st.content.shape
    assert (detailed - st.content).abs().mean() < 0.5 * (plain - st.content).abs().mean()
    assert 0 <= detailed.min() and detailed.max() <= 1


def _run(content: Path, style: Path, **options) -> tuple[list, list]:
    events: list = []
    result = StyleTransfer(Config(**FP32, **options)).run(content, [style], on_event=events.append)
    return result.history, events


def test_an_automatic_run_is_the_forced_runs_first_steps_then_stops(content: Path, style: Path):
    auto, events = _run(content, style, size=48, multiscale=False)
    forced, _ = _run(content, style, size=48, multiscale=False, iterations=len(auto) + 20)
    n = len(auto) - 1
    assert RULE.min_steps <= n < len(forced) - 1
    for a, f in zip(auto[:-1], forced[:n]):  # the same trajectory up to the stop
        assert a["total"] == f["total"]
    finished = events[-1]
    assert isinstance(events[0], Started) and isinstance(finished, Finished)
    assert finished.reason.startswith("finished: loss improved under 2.0%")
    progress = [e for e in events if isinstance(e, Progress)]
    assert all(p.eta is not None and p.eta >= 0 for p in progress[1:])
    assert abs(progress[-1].total - len(auto)) <= 2  # the estimate has closed on the rows made
    assert progress[-1].eta < 0.05 * progress[-1].seconds


def test_a_forced_run_runs_every_step_on_todays_schedule(content: Path, style: Path):
    history, events = _run(content, style, size=48, iterations=7)
    assert [int(r["iteration"]) for r in history] == list(range(8))
    assert events[-1].reason == "ran the 7 iterations asked for"
    auto_sizes = StyleTransfer(Config(**FP32, size=512)).stage_sizes(None)
    forced_sizes = StyleTransfer(Config(**FP32, size=512, iterations=300)).stage_sizes(None)
    assert auto_sizes == forced_sizes == [256, 512]


def test_an_automatic_coarse_to_fine_run_stops_every_stage_by_its_rule_and_says_so(content: Path, style: Path):
    history, events = _run(content, style, size=64, scales=[32, 64], stop_tolerance=0.03)
    steps = {scale: sum(1 for r in history if int(r["scale"]) == scale) for scale in (32, 64)}
    assert steps[32] > RULE.min_steps and FINE_MIN_STEPS <= steps[64] - 1 < 300
    assert events[-1].reason.startswith("finished: loss improved under 6.75%") and "under 13.5% in each finer stage" in events[-1].reason


def test_a_lead_schedule_paints_an_automatic_one_stage_run_first_at_half_the_pixels_with_light_style():
    plan = Schedule([256], None, lead=True)
    assert plan.lead and plan.sizes == [181, 256]
    layers = ["block1_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
    assert plan.style_factors(0, layers) == {"block1_conv1": 1.0, "block3_conv1": 1.0,
                                             "block4_conv1": LEAD_STYLE, "block5_conv1": LEAD_STYLE}
    assert plan.style_factors(1, layers) == {}
    assert plan.style_factors(0, ["pool3", "pool4"]) == {"pool3": 1.0, "pool4": LEAD_STYLE}  # pools by their block
    lead, own = plan.rules
    assert lead is not None and own is not None and own.tolerance == LEAD_TOLERANCE
    assert own.min_steps == FINE_MIN_STEPS and "(181 px, the style layers past block3 at 0.15x their weight)" in plan.describe()
    # small, forced or already coarse-to-fine: no lead
    assert not any(Schedule(s, n, lead=True).lead for s, n in (([128], None), ([256], 300), ([256, 512], None)))
    assert Schedule([256], None).sizes == [256]


def test_a_run_from_a_start_near_its_end_keeps_the_tighter_rule_and_expects_fewer_steps():
    cold, warm = Schedule([256], None), Schedule([256], None, warm=True)
    assert warm.rules == [Plateau(window=RULE.window, tolerance=WARM_TOLERANCE, min_steps=RULE.min_steps)]
    assert WARM_TOLERANCE < RULE.tolerance
    # --stop-tolerance scales it with the others
    assert Schedule([256], None, tolerance=RULE.tolerance / 2, warm=True).rules[0].tolerance == WARM_TOLERANCE / 2
    assert warm.planned_rows() == WARM_PRIOR_STEPS + 1 < cold.planned_rows()
    assert Schedule([256], 100, warm=True).planned_rows() == 101  # -n: the count asked for


class _Enough(Exception):
    """Raised at a run's first progress event: what the run set up is known by then."""


def _first_progress(st: StyleTransfer, content: Path, style: Path, init_image: torch.Tensor | None = None) -> Started:
    events: list = []

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, Progress):
            raise _Enough

    with pytest.raises(_Enough):
        st.run(content, [style], on_event=on_event, init_image=init_image)
    return events[0]


def _layer_shares(st: StyleTransfer) -> dict[str, float]:
    """Each style layer's weight in the total, as the objective applies it."""
    style = st._objective().style
    norm = sum(style.layer_weights.values())
    return {n: style.weight * w / norm for n, w in style.layer_weights.items()}


def test_with_lead_stage_an_automatic_run_of_192_px_paints_a_lead_stage_with_light_deep_style(content: Path, style: Path):
    st = StyleTransfer(Config(**FP32, size=192, lead_stage=True))
    assert _first_progress(st, content, style).stages == (136, 192)
    lead = _layer_shares(st)
    for options in ({}, {"iterations": 5}, {"multiscale": False}):  # the default, forced, one stage: no lead
        other = StyleTransfer(Config(**FP32, size=192, lead_stage=bool(options), **options))
        assert _first_progress(other, content, style).stages == (192,)
        assert other._objective().style.weight == pytest.approx(other.config.style_weight)
    full = _layer_shares(other)
    assert lead.keys() == full.keys() and {"block1_conv1", "block5_conv1"} <= lead.keys()
    for name in lead:  # colour and texture at full weight, the arrangement (blocks 4-5) light
        factor = LEAD_STYLE if name.startswith(("block4", "block5")) else 1.0
        assert lead[name] == pytest.approx(factor * full[name])


def test_a_video_frames_warm_start_shows_a_shorter_run_from_its_first_event(content: Path, style: Path):
    cold = _first_progress(StyleTransfer(Config(**FP32, size=48)), content, style)
    warm = _first_progress(StyleTransfer(Config(**FP32, size=48)), content, style, init_image=torch.full((1, 3, 48, 48), 0.5))
    assert warm.total == WARM_PRIOR_STEPS + 1 < cold.total


def test_lead_stage_where_a_run_cannot_have_one_says_so_in_the_record(content: Path, style: Path):
    result = StyleTransfer(Config(**FP32, size=48, lead_stage=True, iterations=2)).run(content, [style])
    assert [int(r["iteration"]) for r in result.history] == [0, 1, 2]  # one stage, as asked
    assert any(n.startswith("--lead-stage: no lead stage in this run") for n in result.notes)


def _optimisers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records which optimiser each stage makes: "pyramid" or "pixels"."""
    made: list[str] = []
    real = loop.make_optimizer

    def spy(x, settings, iterations):
        made.append("pyramid" if settings.pyramid else "pixels")
        opt = real(x, settings, iterations)
        assert (getattr(opt, "precondition", None) is not None) == settings.pyramid
        return opt

    monkeypatch.setattr(loop, "make_optimizer", spy)
    return made


def test_with_pyramid_an_automatic_run_from_the_photo_steps_its_first_stage_as_a_pyramid(
        content: Path, style: Path, monkeypatch: pytest.MonkeyPatch):
    made = _optimisers(monkeypatch)
    history, events = _run(content, style, size=48, multiscale=False, pyramid=True)
    assert made == ["pyramid"] and RULE.min_steps <= len(history) - 1 < 300
    assert events[-1].reason.startswith("finished: loss improved under 1.5%")
    pixels, _ = _run(content, style, size=48, multiscale=False)
    assert made == ["pyramid", "pixels"]  # the default steps pixels
    assert [r["total"] for r in history[:3]] != [r["total"] for r in pixels[:3]]
    made.clear()
    _run(content, style, size=64, scales=[32, 64], stop_tolerance=0.03, pyramid=True)
    assert made == ["pyramid", "pixels"]  # a finer stage starts near its end: pixels


def test_with_pyramid_n_and_a_start_image_still_step_pixels(content: Path, style: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    made = _optimisers(monkeypatch)
    forced = StyleTransfer(Config(**FP32, size=48, multiscale=False, iterations=3, pyramid=True)).run(content, [style])
    assert any(n.startswith("--pyramid: this run steps pixels") for n in forced.notes)
    warm = StyleTransfer(Config(**FP32, size=48, multiscale=False, stop_tolerance=0.5, pyramid=True)).run(
        content, [style], init_image=torch.rand(1, 3, 48, 48))
    assert made == ["pixels", "pixels"] and not warm.notes  # a video frame's warm start: no note each frame
