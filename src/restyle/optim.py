"""Optimisers for one image tensor: L-BFGS (fixed step) and Adam, without host syncs.

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
        return loss, self.x.grad


class LBFGS(_ImageOptimizer):
    """L-BFGS with step ``lr`` (the first step scaled by ``min(1, 1/‖g‖₁)``, as torch does)."""

    def __init__(self, x: torch.Tensor, lr: float = 1.0, history_size: int = 50):
        self.x, self.lr, self.m = x, lr, history_size
        self.dirs: list[torch.Tensor] = []  # y_k = g_{k+1} - g_k
        self.steps: list[torch.Tensor] = []  # s_k = x_{k+1} - x_k
        self.rho: list[torch.Tensor] = []  # 1 / y_kᵀs_k, or 0 for a pair that carries no curvature
        self.h_diag = torch.ones((), device=x.device)
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        loss, g = self._evaluate(closure)
        g = g.reshape(-1)
        if self.prev_grad is None:
            d = g.neg()
            t = torch.clamp(1.0 / g.abs().sum(), max=1.0) * self.lr
        else:
            y, s = g - self.prev_grad, self.prev_step
            ys = y.dot(s)
            useful = ys > 1e-10
            if len(self.dirs) == self.m:
                self.dirs.pop(0), self.steps.pop(0), self.rho.pop(0)
            self.dirs.append(y)
            self.steps.append(s)
            self.rho.append(torch.where(useful, 1.0 / ys, torch.zeros_like(ys)))
            self.h_diag = torch.where(useful, ys / y.dot(y), self.h_diag)
            d = self._two_loop(g)
            t = torch.full((), self.lr, device=g.device)
        # Only descend: a direction with gᵀd ≥ 0 takes no step (torch's L-BFGS stops there).
        t = t * (g.dot(d) < 0)
        self.prev_grad = g.clone()
        self.prev_step = d * t
        self.x.add_(self.prev_step.view_as(self.x))
        return loss

    def _two_loop(self, g: torch.Tensor) -> torch.Tensor:
        """-H g by the L-BFGS two-loop recursion over the stored pairs."""
        q = g.neg()
        alphas = []
        for s, y, rho in zip(reversed(self.steps), reversed(self.dirs), reversed(self.rho)):
            a = s.dot(q) * rho
            q.sub_(y * a)
            alphas.append(a)
        r = q.mul_(self.h_diag)
        for s, y, rho, a in zip(self.steps, self.dirs, self.rho, reversed(alphas)):
            r.add_(s * (a - y.dot(r) * rho))
        return r


class Adam(_ImageOptimizer):
    """Adam (Kingma & Ba), the same update as ``torch.optim.Adam`` with default betas."""

    def __init__(self, x: torch.Tensor, lr: float = 0.02, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.x, self.lr, self.betas, self.eps = x, lr, betas, eps
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
        return loss
