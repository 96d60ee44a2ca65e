"""restyle's own optimisers: the same iterates as torch.optim's, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from restyle.nn import optim
from shared_helpers import optimiser_steps

# Numerically sensitive: scripts/test.sh runs these again with AVX2 kernels and no native bf16.
pytestmark = pytest.mark.numeric


def rosenbrock_like(x: torch.Tensor) -> torch.Tensor:
    """A smooth, non-quadratic objective over a small 'image' tensor."""
    a = x[..., :-1]
    b = x[..., 1:]
    return ((1 - a) ** 2).sum() + 10 * ((b - a**2) ** 2).sum() + 0.1 * (x**4).sum()


def run(make_opt, steps: int) -> tuple[list[float], torch.Tensor]:
    torch.manual_seed(0)
    x = (torch.rand(1, 3, 4, 5, dtype=torch.float64) * 0.5).requires_grad_(True)
    return optimiser_steps(make_opt(x), x, rosenbrock_like, steps), x.detach()


def test_lbfgs_matches_torch_lbfgs_and_descends():
    ours, x_ours = run(lambda x: optim.LBFGS(x, lr=1.0, history_size=5), 25)
    theirs, x_theirs = run(
        lambda x: torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=5, tolerance_grad=0.0, tolerance_change=0.0),
        25,
    )
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert torch.allclose(x_ours, x_theirs, rtol=1e-9, atol=1e-12)
    assert ours[-1] < 0.5 * ours[0]


def test_adam_matches_torch_adam():
    ours, x_ours = run(lambda x: optim.Adam(x, lr=0.05), 30)
    theirs, x_theirs = run(lambda x: torch.optim.Adam([x], lr=0.05), 30)
    assert ours == pytest.approx(theirs, rel=1e-10)
    assert torch.allclose(x_ours, x_theirs, rtol=1e-10, atol=1e-12)


def test_lbfgs_takes_no_step_along_an_ascent_direction():
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = optim.LBFGS(x)
    # Gradient is zero: the direction -g is zero, so gᵀd = 0 is not descent and x must not move (or become NaN).
    opt.step(lambda: (x * 0).sum().backward() or torch.zeros(()))
    assert torch.equal(x.detach(), torch.zeros(4, dtype=torch.float64))


def test_default_run_does_not_import_torch_dynamo():
    code = (
        "import sys, torch; from restyle.nn import optim; x = torch.ones(3, requires_grad=True);"
        "o = optim.LBFGS(x); o.step(lambda: (x ** 2).sum().backward() or (x ** 2).sum());"
        "a = optim.Adam(x); a.step(lambda: (x ** 2).sum().backward() or (x ** 2).sum());"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def two_loop_direction(g: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Reference: -H g by the textbook two-loop recursion (Nocedal & Wright, alg. 7.4) over the
    pairs with curvature (yᵀs > 1e-10; the others are left out), H₀ = γI from the newest of them."""
    kept = [(s, y) for s, y in pairs if float(y.dot(s)) > 1e-10]
    q, alphas = g.clone(), []
    for s, y in reversed(kept):
        alphas.append(float(s.dot(q)) / float(y.dot(s)))
        q = q - alphas[-1] * y
    s, y = kept[-1]
    r = q * (float(y.dot(s)) / float(y.dot(y)))
    for (s, y), a in zip(kept, reversed(alphas)):
        r = r + s * (a - float(y.dot(r)) / float(y.dot(s)))
    return -r


@pytest.mark.parametrize("history_size", [4, 6])
def test_lbfgs_direction_equals_the_two_loop_recursion_with_pairs_skipped(history_size):
    """The compact form computes the two-loop's direction, from a ring buffer that has wrapped
    around, with pairs of negative curvature stored but left out."""
    gen = torch.Generator().manual_seed(0)
    n = 40
    x = torch.zeros(n, dtype=torch.float64)
    opt = optim.LBFGS(x, history_size=history_size)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.T / n + torch.eye(n, dtype=torch.float64)  # positive definite: yᵀs > 0 ...
    pairs, skipped = [], 0
    opt.prev_grad = torch.randn(n, generator=gen, dtype=torch.float64)
    opt.prev_step = torch.randn(n, generator=gen, dtype=torch.float64)
    for k in range(9):
        s = opt.prev_step
        y = hessian @ s if k % 3 != 1 else -(hessian @ s)  # ... except every third pair
        skipped += k % 3 == 1
        g = opt.prev_grad + y
        pairs = (pairs + [(s, y)])[-history_size:]
        d = opt._direction(g)
        assert torch.allclose(d, two_loop_direction(g, pairs), rtol=1e-9, atol=1e-12)
        opt.prev_grad, opt.prev_step = g, torch.randn(n, generator=gen, dtype=torch.float64)
    assert skipped >= 3 and opt.count == history_size


def test_lbfgs_history_lives_on_the_image_device_in_one_buffer():
    x = torch.zeros(2, 3, dtype=torch.float32, requires_grad=True)
    opt = optim.LBFGS(x, history_size=7)
    assert opt.w.shape == (14, 6) and opt.w.device == x.device and opt.w.dtype == x.dtype


@pytest.mark.parametrize("make", [lambda x: optim.LBFGS(x, bounds=(0.0, 1.0)),
                                  lambda x: optim.Adam(x, lr=0.2, bounds=(0.0, 1.0))], ids=["lbfgs", "adam"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_bounded_optimisers_stay_in_the_box_and_reach_its_best_point(make, channels_last):
    """Target 1.5 for half the values (outside the box: the best point is its edge, 1) and 0.3
    for the rest (inside: reached)."""
    x = torch.rand(1, 3, 6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    target = torch.full_like(x, 0.3)
    target[..., :3] = 1.5
    opt = make(x)

    def closure():
        opt.zero_grad()
        loss = ((x - target) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(200):
        opt.step(closure)
        assert 0.0 <= float(x.detach().min()) and float(x.detach().max()) <= 1.0
    expected = target.clamp(0, 1)
    assert torch.allclose(x.detach(), expected, atol=1e-3)


# ---- the safeguard -------------------------------------------------------------------------


def stiff(x: torch.Tensor) -> torch.Tensor:
    """A convex quadratic whose curvature spans 1..400: a unit step overshoots along the stiff axes."""
    scales = torch.linspace(1.0, 400.0, x.numel(), dtype=x.dtype)
    return (scales * (x.reshape(-1) - 0.25) ** 2).sum()


def run_on(fn, make_opt, steps, start=0.9):
    x = torch.full((1, 1, 4, 5), start, dtype=torch.float64, requires_grad=True)
    opt = make_opt(x)
    losses, accepted = [], []

    def closure():
        opt.zero_grad()
        loss = fn(x)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
        accepted.append(bool(getattr(opt, "accepted", True)))
    return x.detach(), losses, accepted, opt


def test_the_fixed_step_overshoots_where_the_safeguard_backtracks():
    """With a step 3x too long the plain L-BFGS raises the loss; the safeguarded one rejects those
    trial points, and the accepted points' losses never rise."""
    _, plain, _, _ = run_on(stiff, lambda x: optim.LBFGS(x, lr=3.0), 30)
    assert max(b / a for a, b in zip(plain, plain[1:])) > 1.5
    for safeguard in ("backtrack", "reset", "adaptive", "secant"):
        x, losses, accepted, _ = run_on(stiff, lambda x, s=safeguard: optim.LBFGS(x, lr=3.0, safeguard=s), 30)
        assert not all(accepted), safeguard  # some trial points were rejected ...
        kept = [f for f, ok in zip(losses, accepted) if ok]
        assert all(b <= a for a, b in zip(kept, kept[1:])), safeguard  # ... and the accepted ones descend
        assert kept[-1] < 1e-3 * kept[0], safeguard


def test_a_rejected_trial_point_is_replaced_by_a_shorter_step_from_the_accepted_point():
    x = torch.full((4,), 1.0, dtype=torch.float64, requires_grad=True)
    opt = optim.LBFGS(x, lr=10.0, safeguard="backtrack")

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    opt.step(closure)  # from 1: the first step, scaled by 1/‖g‖₁ = 1/8, times lr 10 -> x = 1 - 2.5 = -1.5
    first_step = opt.prev_step.clone()
    assert torch.allclose(x.detach(), torch.full((4,), -1.5, dtype=torch.float64))
    opt.step(closure)  # loss 9 > 4: rejected, back to 1 + β s with β the quadratic model's minimiser (0.4)
    assert not bool(opt.accepted)
    torch.testing.assert_close(opt.prev_step, 0.4 * first_step)
    torch.testing.assert_close(x.detach(), torch.full((4,), 0.0, dtype=torch.float64))


def test_the_reset_safeguard_forgets_the_curvature_memory_when_it_rejects():
    _, _, accepted, opt = run_on(stiff, lambda x: optim.LBFGS(x, lr=3.0, safeguard="reset"), 6)
    first_reject = accepted.index(False)
    _, _, _, opt = run_on(stiff, lambda x: optim.LBFGS(x, lr=3.0, safeguard="reset"), first_reject + 1)
    assert bool(torch.all(opt.w == 0)) and bool(opt._fresh)


def test_a_non_finite_trial_point_is_rejected_and_the_image_stays_finite():
    x = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    opt = optim.LBFGS(x, lr=4.0, safeguard="backtrack")

    def closure():
        opt.zero_grad()
        loss = ((x - 0.2) ** 2).sum() + torch.where(x.detach().abs() > 0.6, float("nan"), 0.0).sum()
        loss.backward()
        return loss

    for _ in range(15):
        opt.step(closure)
        assert bool(torch.isfinite(x).all())
    opt.settle(closure().detach())
    assert torch.allclose(x.detach(), torch.full((3,), 0.2, dtype=torch.float64), atol=1e-3)


def test_the_safeguarded_step_reads_nothing_back_to_the_host(monkeypatch):
    """Every decision is a mask on the device: no .item(), bool(), float() or .tolist() of a tensor."""
    x = torch.full((1, 1, 4, 5), 0.9, dtype=torch.float64, requires_grad=True)
    opt = optim.LBFGS(x, lr=3.0, safeguard="reset")

    def closure():
        opt.zero_grad()
        loss = stiff(x)
        loss.backward()
        return loss

    def refuse(*args, **kwargs):
        raise AssertionError("host read")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for _ in range(8):
        opt.step(closure)
    monkeypatch.undo()
    assert float(stiff(x.detach())) < 0.01 * float(stiff(torch.full_like(x, 0.9)))  # and it did optimise


def tiny_steps_with_a_rise(rise: float, on_call: int):
    """A safeguarded L-BFGS on a quadratic with a step far too short to lower the loss visibly, and
    its closure, whose ``on_call``-th evaluation reports the loss ``1 + rise`` times too high (as
    rounding noise would); the call counter is returned so a test can move it."""
    x = torch.full((6,), 0.9, dtype=torch.float64, requires_grad=True)
    opt = optim.LBFGS(x, lr=1e-6, safeguard="reset")
    calls = {"n": 0}

    def closure():
        opt.zero_grad()
        loss = ((x - 0.25) ** 2).sum()
        loss.backward()
        calls["n"] += 1
        return loss.detach() * (1 + rise * (calls["n"] == on_call))

    return opt, closure, calls


def test_a_rise_within_the_losss_rounding_noise_is_accepted_so_a_tiny_step_cannot_stall():
    """A dark 256-px photo's first step (scaled by 1/‖g‖₁) changed its fp32 loss by 4e-7 relative,
    upwards: rejecting that, and every shorter retry, froze the run at its first image."""
    opt, closure, calls = tiny_steps_with_a_rise(rise=5e-7, on_call=2)  # rounding noise on the trial: a rise
    opt.step(closure)
    opt.step(closure)
    assert bool(opt.accepted)
    calls["n"] = 1  # the same rise, 20x the tolerance: rejected
    opt.step(lambda: closure() * (1 + 20 * optim.NOISE))
    assert not bool(opt.accepted)


def test_a_probe_steps_trial_gets_the_wider_tolerance_and_a_later_step_does_not():
    """The first step is a probe (scaled by 1/‖g‖₁); its trial may rise by rounding noise (bf16:
    up to ~1e-4 relative) and is kept; the same rise on a later step is rejected."""
    opt, closure, _ = tiny_steps_with_a_rise(rise=1e-4, on_call=2)  # the probe's trial rises by 1e-4: kept
    opt.step(closure)
    opt.step(closure)
    assert bool(opt.accepted)
    opt, closure, _ = tiny_steps_with_a_rise(rise=1e-4, on_call=3)  # the trial of the step after it: rejected
    for _ in range(3):
        opt.step(closure)
    assert not bool(opt.accepted)
