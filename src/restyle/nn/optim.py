"""Optimisers for one image tensor: L-BFGS (fixed step, safeguarded) and Adam, without host syncs.

Both take ``bounds=(lo, hi)``: after each step the image is projected onto that box (restyle
passes [0, 1], the range of the image it delivers), and L-BFGS keeps the step actually taken
as its curvature pair.

``torch.optim`` would do, but constructing any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (about 1.3 s on a small CPU, a third of restyle's start-up), and its L-BFGS
reads the loss and several dot products back to the host every iteration. These two keep
every quantity on the image's device: where torch's L-BFGS *skips* a curvature pair (yᵀs ≤
1e-10) or a non-descent direction, this one multiplies by a 0/1 mask instead of branching.
With those cases absent the plain (``safeguard=None``) iterates equal
``torch.optim.LBFGS(max_iter=1)``'s, which the tests check. The strong-Wolfe line search
(``--line-search``) still uses torch's L-BFGS and stays the exact reference.

**The safeguard.** A fixed unit step can overshoot: on dark and low-contrast photos the loss
rose 4x to 190x in the first iterations and often never recovered (issue 10). With
``safeguard`` set, each evaluated point is a *trial*: it is accepted when its loss is finite and
passes the Armijo test against the last accepted point (up to a 1e-5 relative rounding
tolerance; 1e-3 for the trial of a *probe* step — the first step, and the first after a reset,
which are scaled by 1/‖g‖₁ and so short that under bf16 their loss change is rounding noise:
without that, a dark photo's run was seen rejecting every probe and never moving), else it is undone, all with masks on the
device (one evaluation per iteration, as before; nothing read to the host). What happens after
a rejection is the variant:

- ``"reset"`` (restyle's default): back to the accepted point plus the backtracked step (β in
  [0.1, 0.5] from a quadratic model), the curvature memory emptied, and the next accepted step
  a scaled gradient step like the first one;
- ``"backtrack"``: the same backtracked step, the memory kept;
- ``"adaptive"``: backtrack, and a step multiplier τ (×β on a rejection, ×2 up to 1 on an
  acceptance) on the following L-BFGS steps;
- ``"secant"``: the rejected trial's curvature pair stored, and a new L-BFGS step from the
  accepted point with the updated memory, halved per consecutive rejection.

Measured on 15 panel cells at 192 px, 25 iterations (docs/quality.md, "Choosing the
safeguard"): all four keep every run's loss from rising; "reset" has the best worst case (final
loss at most 1.35x the best variant's on every cell; backtrack 3.2x, adaptive 2.1x, secant up to
4.6x on the 4 cells it ran), the fixed step up to 248x. Hence the default.
"""

from __future__ import annotations

from typing import Callable

import torch

#: Safeguards of :class:`LBFGS` (None: the plain fixed step); see ``LBFGS._safeguarded_step``.
SAFEGUARDS = (None, "backtrack", "reset", "adaptive", "secant")
#: The sufficient-decrease constant of the safeguard's acceptance test, and the relative rise it
#: tolerates as rounding noise (an fp32 loss summed over 10⁵–10⁷ terms moves by ~1e-6 relative
#: between two images closer than its rounding: 56.10975 -> 56.10981 was seen on a dark photo).
ARMIJO = 1e-4
NOISE = 1e-5
#: The tolerance for the trial of a probe step (see ``_safeguarded_step``): under bf16 a hubble
#: photo's 256-px probe step raised the loss by 1.5e-5 relative, and every retry alike, for ever.
PROBE_NOISE = 1e-3


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
    compare both, and against ``torch.optim.LBFGS``. With ``precondition`` (a symmetric positive
    definite map ``M`` of flat vectors, e.g. :meth:`restyle.nn.pyramid.Pyramid.apply`) the starting
    metric is ``H₀ = γ M`` (:meth:`_direction`); without it every step is as before.
    """

    def __init__(self, x: torch.Tensor, lr: float = 1.0, history_size: int = 50,
                 bounds: tuple[float, float] | None = None, safeguard: str | None = None,
                 precondition: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if safeguard not in SAFEGUARDS:
            raise ValueError(f"unknown safeguard {safeguard!r}; choose one of {SAFEGUARDS}")
        if precondition is not None and safeguard == "secant":
            raise ValueError("the secant safeguard takes no preconditioner")
        self.x, self.lr, self.m, self.bounds = x, lr, history_size, bounds
        self.safeguard = safeguard
        #: ``M``: ``H₀ = γ M`` instead of ``γ I`` (a symmetric positive definite map of flat vectors;
        #: see :meth:`_direction`), or None.
        self.precondition = precondition
        #: True where the last step's trial point was accepted (always, without a safeguard).
        self.accepted = torch.ones((), dtype=torch.bool, device=x.device)
        self._f_acc: torch.Tensor | None = None  # loss at the last accepted point (float64)
        self._x_acc: torch.Tensor | None = None  # the last accepted point (flat)
        self._fresh = torch.zeros((), dtype=torch.bool, device=x.device)  # memory was just reset
        self._probe = torch.ones((), dtype=torch.bool, device=x.device)  # the last step was a probe step
        self._tau = torch.ones((), dtype=torch.float64, device=x.device)  # step multiplier (adaptive)
        n = x.numel()
        self.w = torch.zeros(2 * history_size, n, dtype=x.dtype, device=x.device)  # rows: s_0..s_m-1, y_0..y_m-1
        self.sy = torch.zeros(history_size, history_size, dtype=torch.float64, device=x.device)  # (i, j): s_iᵀ y_j, ring-slot order
        self.yy = torch.zeros(history_size, history_size, dtype=torch.float64, device=x.device)  # (i, j): y_iᵀ y_j (y_iᵀ M y_j)
        self.count = 0  # pairs stored (a pair that carries no curvature is stored as zeros)
        self.slot = 0  # where the next pair goes
        self.h_diag = torch.ones((), dtype=torch.float64, device=x.device)  # γ: H₀ = γ I (γ M)
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None
        self._orders: dict[tuple[int, int], torch.Tensor] = {}
        self._mg: torch.Tensor | None = None  # with precondition: M g at the point just evaluated
        self.prev_mg: torch.Tensor | None = None  # ... and at the point the next step starts from

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        loss, g = self._evaluate(closure)
        g = g.reshape(-1)
        if self.safeguard is not None:
            return self._safeguarded_step(loss, g)
        if self.prev_grad is None:
            d = self._first(g)
            t = torch.clamp(1.0 / d.abs().sum(), max=1.0) * self.lr
        else:
            d = self._direction(g)
            t = torch.full((), self.lr, dtype=g.dtype, device=g.device)
        # Only descend: a direction with gᵀd ≥ 0 takes no step (torch's L-BFGS stops there).
        t = t * (g.dot(d) < 0)
        self.prev_grad = g.clone()
        self.prev_mg = self._mg  # (None without a preconditioner)
        self.prev_step = self._move(d * t)
        return loss

    def _safeguarded_step(self, loss: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """One step with the point just evaluated (``x``, loss ``f``, gradient ``g``) tested
        against the last accepted point (``x_a``, ``f_a``, ``g_a``, and ``s`` the step from it):

        - accepted when ``f`` is finite and ``f ≤ f_a + c₁·g_aᵀs + ε·|f_a|`` (Armijo, ``c₁ = ARMIJO``,
          and ``ε = NOISE`` for the loss's rounding noise): the
          pair ``(s, g − g_a)`` is stored and the next step is the L-BFGS one from ``x``;
        - otherwise rejected: ``x`` goes back to ``x_a + β·s``, ``β`` the minimiser of the
          quadratic through ``f_a``, ``g_aᵀs`` and ``f``, kept in [0.1, 0.5] (a backtracking line
          search spread over iterations, one evaluation each); with ``"reset"`` the curvature
          memory is emptied too and the next L-BFGS step starts as the first one did.

        Every decision is a 0/1 mask on the device; nothing is read to the host."""
        f = loss.detach().double()
        finite = torch.isfinite(f) & torch.isfinite(g).all()
        g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
        first = self.prev_grad is None
        if first:
            accept = finite | True
            self._f_acc = torch.where(finite, f, torch.full_like(f, float("inf")))
            self._x_acc = self.x.detach().reshape(-1).clone()
            d, g_dir = self._first(g), g
            t = torch.clamp(1.0 / d.abs().sum(), max=1.0) * self.lr
        else:
            assert self.prev_grad is not None and self.prev_step is not None
            assert self._f_acc is not None and self._x_acc is not None
            s, g_a, f_a = self.prev_step, self.prev_grad, self._f_acc
            slope = g_a.dot(s).double()  # g_aᵀs < 0 for every step taken
            # A change within the loss's rounding noise is no evidence either way: accepted (else the
            # first, tiny gradient step of a large or dark image can be rejected for ever).
            # The trial of a probe step (the first, and the first after a reset: scaled by 1/‖g‖₁,
            # so short that under bf16 its loss change is rounding noise) gets a wider tolerance.
            tol = torch.where(self._probe, PROBE_NOISE, NOISE).to(f.dtype)
            accept = finite & (f <= f_a + ARMIJO * slope + tol * f_a.abs())
            if self.safeguard == "secant":
                # The rejected trial's pair is curvature information too: store it, and step again
                # from the accepted point along -H g_a with the updated memory, shortened by τ.
                g_dir = torch.where(accept, g, g_a)
                d = self._direction(g, None, at=g_dir)
            else:
                # Across a reset no pair is stored: the memory starts empty from the accepted point.
                d = self._direction(g, accept & ~self._fresh)
                g_dir = g
            # After a reset the first step's scale again: min(1, 1/‖g‖₁) (‖M g‖₁ when preconditioned;
            # the direction is then -M g).
            t0 = torch.clamp(1.0 / (g if self.precondition is None else d).abs().sum(), max=1.0)
            t = torch.where(self._fresh, t0, torch.ones_like(t0)) * self.lr
            if self.safeguard in ("adaptive", "secant"):
                t = t * self._tau.to(t.dtype)
            # Backtrack: the minimiser of q(β) = f_a + β·slope + β²·(f − f_a − slope).
            curv = (torch.where(finite, f, f_a) - f_a - slope).clamp_min(1e-300)
            beta = (-slope / (2 * curv)).clamp(0.1, 0.5)
            beta = torch.where(finite & torch.isfinite(beta), beta, torch.full_like(beta, 0.1))
        t = t * (g_dir.dot(d) < 0)
        step = d * t
        # The step taken now is a probe step when it is the first, or the first accepted after a reset.
        self._probe = torch.ones_like(self._probe) if first else (accept & self._fresh)
        if not first:
            x_flat = self.x.detach().reshape(-1)
            base = torch.where(accept, x_flat, self._x_acc)
            if self.safeguard != "secant":
                step = torch.where(accept, step, beta.to(step.dtype) * s)
            # The accepted point becomes the new reference (masked copies, no branch).
            self._x_acc = base.clone()
            self._f_acc = torch.where(accept, f, f_a)
            g = torch.where(accept, g, g_a)  # the gradient at the point the next step starts from
            if self.safeguard == "reset":
                self._reset_memory(~accept)
            if self.safeguard == "adaptive":
                self._tau = torch.where(accept, (self._tau * 2).clamp(max=1.0), self._tau * beta)
            if self.safeguard == "secant":
                self._tau = torch.where(accept, torch.ones_like(self._tau), self._tau * 0.5)
            self.x.copy_(base.view(self.x.shape))
        self.accepted = accept
        self.prev_grad = g.clone()
        if self._mg is not None:  # preconditioned: M g at the point the next step starts from
            kept = self._mg if self.prev_mg is None else self.prev_mg
            self.prev_mg = torch.where(accept, self._mg, kept)
        self.prev_step = self._move(torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0))
        return loss

    def _reset_memory(self, reset: torch.Tensor) -> None:
        """Where ``reset`` (a 0-d bool on the device) is true, forget every stored pair (zero
        pairs are inert) and make the next step a scaled gradient step, as the first one."""
        keep = (~reset).to(self.w.dtype)
        self.w.mul_(keep)
        self.sy.mul_(keep.double())
        self.yy.mul_(keep.double())
        self.h_diag = torch.where(reset, torch.ones_like(self.h_diag), self.h_diag)
        self._fresh = reset

    @torch.no_grad()
    def settle(self, loss: torch.Tensor) -> torch.Tensor:
        """After the last step: ``loss`` is that of the current (trial) point; where it fails the
        acceptance test, put ``x`` back at the last accepted point. Returns the 0-d mask of
        "kept the trial point" (always true without a safeguard)."""
        if self.safeguard is None or self._f_acc is None or self._x_acc is None:
            return torch.ones((), dtype=torch.bool, device=self.x.device)
        f = loss.detach().double()
        keep = torch.isfinite(f) & (f <= self._f_acc)
        self.x.copy_(torch.where(keep, self.x.detach().reshape(-1), self._x_acc).view(self.x.shape))
        return keep

    def accepted_image(self) -> torch.Tensor:
        """The last accepted point (shaped as ``x``): the optimiser's iterate, which a trial
        point that was rejected is not."""
        if self._x_acc is None:
            return self.x.detach()
        return self._x_acc.view(self.x.shape)

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

    def _first(self, g: torch.Tensor) -> torch.Tensor:
        """The first step's direction: ``-g``, or ``-M g`` when preconditioned."""
        if self.precondition is None:
            return g.neg()
        mg = self._mg = self.precondition(g)
        return mg.neg()

    def _direction(self, g: torch.Tensor, store: torch.Tensor | None = None,
                   at: torch.Tensor | None = None) -> torch.Tensor:
        """Store the pair (s, y = g − g_prev) of the last step (as zeros where ``store``, a 0-d
        bool, is false), then return ``-H g`` (``-H at`` when ``at`` is given).

        With ``precondition`` (``H₀ = γ M``) it is the same compact form with ``YᵀY`` read as
        ``YᵀMY`` (kept in ``yy``) and ``Yᵀg`` as ``Yᵀ(M g)``, ``H g = γ M g + S p − γ M (Y u)`` and
        ``γ = sᵀy / yᵀMy``. ``M y`` of the new pair is ``M g − M g_prev``, so ``M`` is applied twice a
        step and ``W`` read twice, as without it. Unconstrained, the iterates are those of L-BFGS on
        ``z`` for an image ``x = P z`` with ``P Pᵀ = M`` (the BFGS update commutes with ``P``)."""
        m, k = self.m, self.slot
        assert self.prev_grad is not None and self.prev_step is not None
        y, s = g - self.prev_grad, self.prev_step
        ys = y.dot(s)
        # torch skips a pair with yᵀs ≤ 1e-10; here it is stored as zeros, which contribute nothing.
        useful = ys > 1e-10
        if store is not None:
            useful = useful & store
        self.w[k].copy_(s).mul_(useful)
        self.w[m + k].copy_(y).mul_(useful)
        if self.precondition is None:
            self.h_diag = torch.where(useful, ys.double() / y.dot(y).double(), self.h_diag)
            # One pass over W: S·s, Y·s, S·y, Y·y (the new row and column of SᵀY and YᵀY) and S·g, Y·g.
            g = g if at is None else at
            prods = (self.w @ torch.stack([self.w[k], self.w[m + k], g]).T).double()
            yy_new, b_col = prods[m:, 1], 2
        else:
            assert self.prev_mg is not None
            mg = self._mg = self.precondition(g)
            my = (mg - self.prev_mg) * useful
            self.h_diag = torch.where(useful, ys.double() / my.dot(y).double(), self.h_diag)
            # One pass over W: S·s, Y·s, S·y, S·g and Y·(M y), Y·(M g).
            prods = (self.w @ torch.stack([self.w[k], self.w[m + k], g, mg, my]).T).double()
            yy_new, b_col = prods[m:, 4], 3
        self.sy[:, k] = prods[:m, 1]  # s_iᵀ y_new
        self.sy[k, :] = prods[m:, 0]  # s_newᵀ y_j
        self.yy[:, k] = yy_new
        self.yy[k, :] = yy_new
        self.count = min(self.count + 1, m)
        self.slot = (k + 1) % m
        order = self._order()  # ring slots, oldest pair first
        a, b = prods[:m, 2][order], prods[m:, b_col][order]  # Sᵀg, Yᵀg (Yᵀ(M g))
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
        if self.precondition is None:
            coef[order + m] = -gamma * u[:, 0]
            return torch.addmv(g * gamma.to(g.dtype), self.w.T, coef.to(g.dtype)).neg_()
        coef[order + m] = u[:, 0]
        sp = self.w[:m].T @ coef[:m].to(g.dtype)
        yu = self.w[m:].T @ coef[m:].to(g.dtype)
        return (mg * gamma.to(g.dtype) + sp - gamma.to(g.dtype) * self.precondition(yu)).neg_()

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
