"""restyle's own optimisers: the same iterates as torch.optim's, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from restyle.nn import optim


def rosenbrock_like(x: torch.Tensor) -> torch.Tensor:
    """A smooth, non-quadratic objective over a small 'image' tensor."""
    a = x[..., :-1]
    b = x[..., 1:]
    return ((1 - a) ** 2).sum() + 10 * ((b - a**2) ** 2).sum() + 0.1 * (x**4).sum()


def run(make_opt, steps: int) -> tuple[list[float], torch.Tensor]:
    torch.manual_seed(0)
    x = (torch.rand(1, 3, 4, 5, dtype=torch.float64) * 0.5).requires_grad_(True)
    opt = make_opt(x)
    losses = []

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = rosenbrock_like(x)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return losses, x.detach()


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
