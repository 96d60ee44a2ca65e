"""The optimisation loop on its own: it takes any loss function of the image, not only the
style-transfer objective (cheap quadratics here, no backbone)."""

from __future__ import annotations

import math

import pytest
import torch

from restyle.engine.loop import PIXEL_RANGE, OptimizerSettings, optimise
from restyle.io.history import HISTORY_FIELDS

# Numerically sensitive: scripts/test.sh runs these again with AVX2 kernels and no native bf16.
pytestmark = pytest.mark.numeric

TARGET = torch.linspace(-0.5, 1.5, 48).reshape(1, 3, 4, 4)  # a third of it outside [0, 1]


def quadratic(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(total, content, style, tv, photo) with total = ‖x − TARGET‖² and content = total."""
    total = (x - TARGET).pow(2).sum()
    zero = torch.zeros(())
    return total, total, zero, zero, zero


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(OptimizerSettings("lbfgs"), id="lbfgs"),
        pytest.param(OptimizerSettings("adam", lr=0.05), id="adam"),
        pytest.param(OptimizerSettings("lbfgs", line_search=True), id="lbfgs-line-search"),
    ],
)
def test_the_loop_minimises_any_loss_inside_the_pixel_box(settings):
    seen = []
    run = optimise(quadratic, torch.full_like(TARGET, 0.5), iterations=60, optimizer=settings, sync_every=7,
                   on_row=lambda row, image: seen.append((row, image)))
    assert run.stopped is None
    best = TARGET.clamp(*PIXEL_RANGE)  # the box's point nearest TARGET
    torch.testing.assert_close(run.image, best, atol=0.05, rtol=0)
    assert run.image.min() >= PIXEL_RANGE[0] and run.image.max() <= PIXEL_RANGE[1]
    assert run.rows[-1]["total"] == pytest.approx(float(quadratic(best)[0]), abs=0.02)
    assert [r["iteration"] for r in run.rows] == list(range(61))  # every step, plus the final image
    assert [r for r, _ in seen] == run.rows
    assert set(run.rows[0]) == set(HISTORY_FIELDS) and run.rows[0]["scale"] == 4
    for row, image in seen:  # each row holds the loss of the image delivered with it
        assert row["total"] == pytest.approx(float(quadratic(image)[0]), rel=1e-5)
    assert run.seconds > 0


def test_a_stage_before_the_last_numbers_rows_from_its_offset_and_skips_the_final_row():
    run = optimise(quadratic, torch.full_like(TARGET, 0.5), iterations=5, optimizer=OptimizerSettings("lbfgs"),
                   offset=10, final=False)
    assert [r["iteration"] for r in run.rows] == [10, 11, 12, 13, 14]


def test_a_non_finite_loss_stops_the_loop_with_the_last_good_image():
    calls = {"n": 0}

    def losses(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        calls["n"] += 1
        parts = quadratic(x)
        return tuple(p * float("nan") for p in parts) if calls["n"] > 3 else parts

    images = []
    run = optimise(losses, torch.full_like(TARGET, 0.5), iterations=10, optimizer=OptimizerSettings("adam", lr=0.05),
                   sync_every=4, on_row=lambda row, image: images.append(image))
    assert run.stopped is not None and "non-finite at iteration 3" in run.stopped
    assert [r["iteration"] for r in run.rows] == [0, 1, 2]
    assert all(math.isfinite(r["total"]) for r in run.rows)
    assert torch.equal(run.image, images[-1])  # the image of the last finite row


def stiff(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A quadratic whose curvature spans 1..400: L-BFGS with a step too long overshoots it."""
    scales = torch.linspace(1.0, 400.0, x.numel()).reshape(x.shape)
    total = (scales * (x - 0.25) ** 2).sum()
    zero = torch.zeros(())
    return total, total, zero, zero, zero


def worst_rise(rows: list[dict[str, float]]) -> float:
    best, rise = math.inf, 1.0
    for r in rows:
        best = min(best, r["total"])
        rise = max(rise, r["total"] / best)
    return rise


def test_rows_of_a_safeguarded_run_hold_accepted_points_so_the_loss_never_rises():
    start = torch.full((1, 3, 4, 4), 0.9)
    plain = optimise(stiff, start, iterations=30, optimizer=OptimizerSettings("lbfgs", lr=3.0, safeguard="off"))
    assert worst_rise(plain.rows) > 1.5  # the fixed step overshoots here
    images = []
    guarded = optimise(stiff, start, iterations=30, optimizer=OptimizerSettings("lbfgs", lr=3.0), sync_every=4,
                       on_row=lambda row, image: images.append(image))
    assert worst_rise(guarded.rows) == 1.0
    for row, image in zip(guarded.rows, images):  # each row still holds the loss of its image
        assert row["total"] == pytest.approx(float(stiff(image)[0]), rel=1e-5)
    assert guarded.rows[-1]["total"] < 1e-3 * guarded.rows[0]["total"]
    assert torch.equal(guarded.image, images[-1])


def test_ema_delivers_the_bias_corrected_moving_average_of_the_iterates():
    start = torch.full_like(TARGET, 0.5)
    settings = OptimizerSettings("adam", lr=0.05)
    plain_images = []
    plain = optimise(quadratic, start, iterations=12, optimizer=settings, on_row=lambda r, im: plain_images.append(im))
    decay = 0.8
    expected = sum(decay ** (len(plain_images) - 1 - k) * (1 - decay) * im for k, im in enumerate(plain_images))
    expected = expected / (1 - decay ** len(plain_images))  # the iterates 0..12, the last one included
    run = optimise(quadratic, start, iterations=12, optimizer=OptimizerSettings("adam", lr=0.05, ema=decay))
    torch.testing.assert_close(run.image, expected, rtol=1e-5, atol=1e-6)
    assert run.rows[-1]["total"] == pytest.approx(float(quadratic(run.image)[0]), rel=1e-5)
    # The iterates are the same; only the delivered image (and the final row, its loss) differ.
    assert [r["total"] for r in run.rows[:-1]] == [r["total"] for r in plain.rows[:-1]]
    assert run.rows[-1]["total"] != plain.rows[-1]["total"]
