"""The pyramid preconditioner: L-BFGS steps an image's coarse structure first (``H₀ = γ M`` with
``M = P Pᵀ``), inside the same box as the pixel optimiser."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from restyle.nn import optim
from restyle.nn.pyramid import Pyramid
from shared_helpers import optimiser_steps

pytestmark = pytest.mark.numeric


def test_the_gradient_map_is_the_transpose_of_the_image_map_at_any_size():
    torch.manual_seed(0)
    for shape in [(1, 3, 13, 21), (1, 3, 32, 32), (2, 1, 7, 5)]:
        p = Pyramid(shape, levels=3, weight=0.8)
        z = torch.randn(p.numel, dtype=torch.float64)
        g = torch.randn(shape, dtype=torch.float64)
        assert torch.dot(p.render(z).reshape(-1), g.reshape(-1)).item() == pytest.approx(
            torch.dot(z, p.adjoint(g)).item(), rel=1e-10)


def test_the_gradient_map_gives_autograds_numbers_through_the_image_map():
    """So ``--pyramid`` runs take the iterates they took when the adjoint went through autograd."""
    torch.manual_seed(0)
    for shape in [(1, 3, 13, 21), (1, 3, 64, 96)]:
        p = Pyramid(shape)
        g = torch.randn(shape)
        z = torch.zeros(p.numel, requires_grad=True)
        (expected,) = torch.autograd.grad(p.render(z), z, g)
        assert torch.equal(p.adjoint(g.reshape(-1)), expected)


def test_the_preconditioner_is_symmetric_and_never_shrinks_a_direction():
    torch.manual_seed(0)
    p = Pyramid((1, 3, 24, 40))
    v, w = torch.randn(2, 3 * 24 * 40, dtype=torch.float64)
    assert v.dot(p.apply(w)).item() == pytest.approx(w.dot(p.apply(v)).item(), rel=1e-10)
    assert v.dot(p.apply(v)).item() >= v.dot(v).item()
    smooth = F.interpolate(torch.randn(1, 3, 3, 5, dtype=torch.float64), size=(24, 40), mode="bilinear").reshape(-1)
    assert smooth.dot(p.apply(smooth)) / smooth.dot(smooth) > 10 * v.dot(p.apply(v)) / v.dot(v)


def two_loop_direction(g, pairs, m):
    """Reference: -H g by the two-loop recursion (Nocedal & Wright, alg. 7.4) with H₀ = γ M,
    γ = sᵀy / yᵀMy from the newest pair."""
    q, alphas = g.clone(), []
    for s, y in reversed(pairs):
        alphas.append(float(s.dot(q)) / float(y.dot(s)))
        q = q - alphas[-1] * y
    s, y = pairs[-1]
    r = (m @ q) * (float(y.dot(s)) / float(y.dot(m @ y)))
    for (s, y), a in zip(pairs, reversed(alphas)):
        r = r + s * (a - float(y.dot(r)) / float(y.dot(s)))
    return -r


def test_the_preconditioned_direction_is_the_two_loop_recursions_from_a_wrapped_memory():
    gen = torch.Generator().manual_seed(0)
    n, history = 30, 4
    b = torch.randn(n, n, generator=gen, dtype=torch.float64)
    m = b @ b.T / n + torch.eye(n, dtype=torch.float64)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.T / n + torch.eye(n, dtype=torch.float64)
    opt = optim.LBFGS(torch.zeros(n, dtype=torch.float64), history_size=history, precondition=lambda v: m @ v)
    opt.prev_grad = torch.randn(n, generator=gen, dtype=torch.float64)
    opt.prev_mg = m @ opt.prev_grad
    opt.prev_step = torch.randn(n, generator=gen, dtype=torch.float64)
    pairs: list = []
    for _ in range(7):
        s = opt.prev_step
        g = opt.prev_grad + hessian @ s
        pairs = (pairs + [(s, hessian @ s)])[-history:]
        assert torch.allclose(opt._direction(g), two_loop_direction(g, pairs, m), rtol=1e-9, atol=1e-12)
        opt.prev_grad, opt.prev_mg = g, m @ g
        opt.prev_step = torch.randn(n, generator=gen, dtype=torch.float64)
    assert opt.count == history


def test_the_image_stays_in_the_box_and_its_loss_never_rises():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 32, 32, dtype=torch.float64) * 1.6 - 0.3  # a third of it outside [0, 1]

    def loss(img):
        assert 0.0 <= float(img.detach().min()) and float(img.detach().max()) <= 1.0
        return ((F.avg_pool2d(img, 4) - F.avg_pool2d(target, 4)) ** 2).sum() + 1e-3 * ((img - target) ** 2).sum()

    x = torch.full_like(target, 0.5).requires_grad_(True)
    opt = optim.LBFGS(x, history_size=10, bounds=(0.0, 1.0), safeguard="reset", precondition=Pyramid(tuple(x.shape)).apply)
    losses = optimiser_steps(opt, x, loss, 40)
    opt.settle(loss(x))
    accepted = [min(losses[: i + 1]) for i in range(len(losses))]
    assert accepted[-1] < 0.2 * losses[0]
    assert float(loss(x).detach()) <= accepted[-1]
