"""Optimisers for one image tensor: L-BFGS (fixed step) and Adam, without host syncs.

Both take ``bounds=(lo, hi)``: after each step the image is projected onto that box (restyle
passes [0, 1], the range of the image it delivers), and L-BFGS keeps the step actually taken
as its curvature pair.

``torch.optim`` would do, but constructing any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (about 1.3 s on a small CPU, a third of restyle's start-up), and its L-BFGS
reads the loss and several dot products back to the host every iteration. These two keep
every quantity on the image's device: where torch's L-BFGS *skips* a curvature pair (yᵀs ≤
1e-10) or a non-descent direction, this one multiplies by a 0/1 mask instead of branching.
With those cases absent the iterates equal ``torch.optim.LBFGS(max_iter=1)``'s, which the
tests check. The strong-Wolfe line search (``--line-search``) still uses torch's L-BFGS.
"""

from __future__ import annotations

from typing import Callable

import torch


class _ImageOptimizer:
    """What both optimisers share: one tensor ``x``; ``step(closure)`` evaluates loss and gradient."""

    x: torch.Tensor

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.x.grad = None

    def _evaluate(self, closure: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, gradient of x) from the closure, which runs with autograd on."""
        with torch.enable_grad():
            loss = closure()
        assert self.x.grad is not None, "the closure must call backward()"
        return loss, self.x.grad


class LBFGS(_ImageOptimizer):
    """L-BFGS with step ``lr`` (the first step scaled by ``min(1, 1/‖g‖₁)``, as torch does).

    The last ``history_size`` pairs live on the device in one ``2m x n`` matrix ``W = [S; Y]``
    (a ring buffer), and ``-H g`` is computed in the compact form of Byrd, Nocedal & Schnabel
    (1994) instead of the two-loop recursion: one ``W·[s, y, g]`` product, a few ``m x m``
    operations in float64 (two triangular solves) and one ``Wᵀ·p`` product, about 25 kernels per
    step whatever ``m`` is, where the two-loop launches ~9 per pair (450 for 50 pairs, more
    launch time than a 512² VGG pass takes on a GPU). The algebra is the two-loop's; the tests
    compare both, and against ``torch.optim.LBFGS``.
    """

    def __init__(self, x: torch.Tensor, lr: float = 1.0, history_size: int = 50,
                 bounds: tuple[float, float] | None = None):
        self.x, self.lr, self.m, self.bounds = x, lr, history_size, bounds
        n = x.numel()
        self.w = torch.zeros(2 * history_size, n, dtype=x.dtype, device=x.device)  # rows: s_0..s_m-1, y_0..y_m-1
        self.sy = torch.zeros(history_size, history_size, dtype=torch.float64, device=x.device)  # (i, j): s_iᵀ y_j, ring-slot order
        self.yy = torch.zeros(history_size, history_size, dtype=torch.float64, device=x.device)  # (i, j): y_iᵀ y_j
        self.count = 0  # pairs stored (a pair that carries no curvature is stored as zeros)
        self.slot = 0  # where the next pair goes
        self.h_diag = torch.ones((), dtype=torch.float64, device=x.device)  # γ: H₀ = γ I
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None
        self._orders: dict[tuple[int, int], torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        loss, g = self._evaluate(closure)
        g = g.reshape(-1)
        if self.prev_grad is None:
            d = g.neg()
            t = torch.clamp(1.0 / g.abs().sum(), max=1.0) * self.lr
        else:
            d = self._direction(g)
            t = torch.full((), self.lr, dtype=g.dtype, device=g.device)
        # Only descend: a direction with gᵀd ≥ 0 takes no step (torch's L-BFGS stops there).
        t = t * (g.dot(d) < 0)
        self.prev_grad = g.clone()
        self.prev_step = self._move(d * t)
        return loss

    def _move(self, step: torch.Tensor) -> torch.Tensor:
        """Take ``step``; with ``bounds``, project onto the box and return the step actually taken
        (the curvature pair must describe where x went)."""
        if self.bounds is None:
            self.x.add_(step.view_as(self.x))
            return step
        flat = self.x.reshape(-1)  # a view when x is contiguous, else a copy (x is then written below)
        new = (flat + step).clamp_(*self.bounds)
        taken = new - flat
        self.x.copy_(new.view(self.x.shape))
        return taken

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """Store the pair (s, y) of the last step, then return ``-H g``."""
        m, k = self.m, self.slot
        assert self.prev_grad is not None and self.prev_step is not None
        y, s = g - self.prev_grad, self.prev_step
        ys = y.dot(s)
        # torch skips a pair with yᵀs ≤ 1e-10; here it is stored as zeros, which contribute nothing.
        useful = ys > 1e-10
        self.w[k].copy_(s).mul_(useful)
        self.w[m + k].copy_(y).mul_(useful)
        self.h_diag = torch.where(useful, ys.double() / y.dot(y).double(), self.h_diag)
        # One pass over W: S·s, Y·s, S·y, Y·y (for the new row and column of SᵀY and YᵀY) and S·g, Y·g.
        prods = (self.w @ torch.stack([self.w[k], self.w[m + k], g]).T).double()
        self.sy[:, k] = prods[:m, 1]  # s_iᵀ y_new
        self.sy[k, :] = prods[m:, 0]  # s_newᵀ y_j
        self.yy[:, k] = prods[m:, 1]
        self.yy[k, :] = prods[m:, 1]
        self.count = min(self.count + 1, m)
        self.slot = (k + 1) % m
        order = self._order()  # ring slots, oldest pair first
        a, b = prods[:m, 2][order], prods[m:, 2][order]  # Sᵀg, Yᵀg
        sy = self.sy[order][:, order]
        gamma = self.h_diag
        diag = sy.diagonal()
        r = sy.triu()
        r.diagonal().copy_(torch.where(diag == 0, torch.ones_like(diag), diag))  # zero pairs: 1, inert
        # H g = γ g + S p − γ Y u, with u = R⁻¹ Sᵀg and p = R⁻ᵀ((D + γ YᵀY) u − γ Yᵀg).
        u = torch.linalg.solve_triangular(r, a[:, None], upper=True)
        v = (diag[:, None] * u) + gamma * (self.yy[order][:, order] @ u) - gamma * b[:, None]
        p = torch.linalg.solve_triangular(r.T, v, upper=False)
        coef = torch.zeros(2 * m, dtype=torch.float64, device=g.device)
        coef[order] = p[:, 0]
        coef[order + m] = -gamma * u[:, 0]
        return torch.addmv(g * gamma.to(g.dtype), self.w.T, coef.to(g.dtype)).neg_()

    def _order(self) -> torch.Tensor:
        """Ring slots in the order their pairs were stored, made on the device (``torch.tensor``
        from a Python list would be a host-to-device copy, which torch follows with a sync)."""
        key = (self.slot, self.count)
        if key not in self._orders:
            first = (self.slot - self.count) % self.m
            self._orders[key] = (torch.arange(self.count, device=self.x.device) + first) % self.m
        return self._orders[key]


class Adam(_ImageOptimizer):
    """Adam (Kingma & Ba), the same update as ``torch.optim.Adam`` with default betas."""

    def __init__(self, x: torch.Tensor, lr: float = 0.02, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 bounds: tuple[float, float] | None = None):
        self.x, self.lr, self.betas, self.eps, self.bounds = x, lr, betas, eps, bounds
        self.m = torch.zeros_like(x)
        self.v = torch.zeros_like(x)
        self.t = 0

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        loss, g = self._evaluate(closure)
        b1, b2 = self.betas
        self.t += 1
        self.m.lerp_(g, 1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.eps)
        self.x.addcdiv_(self.m, denom, value=-self.lr / (1 - b1**self.t))
        if self.bounds is not None:
            self.x.clamp_(*self.bounds)
        return loss
