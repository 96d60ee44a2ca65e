"""The pyramid preconditioner of L-BFGS (``--pyramid``): an automatic run's first stage moves coarse structure first.

Write the image as a pyramid, ``x = P z = z₀ + w·up(z₁ + w·up(z₂ + …))`` (``L`` levels below the
image, each half the side of the one above, ``up`` bilinear). L-BFGS on ``z`` is L-BFGS on ``x``
whose starting metric ``H₀ = γ I`` becomes ``γ M`` with ``M = P Pᵀ``: a step moves a smooth
direction (a block of ``4ᵏ`` pixels together) up to about ``(4w²)ᵏ`` times as far as it moves
single pixels, and the curvature pairs refine the fine marks as before. restyle keeps the image
as its variable (:class:`restyle.nn.optim.LBFGS` with ``precondition=Pyramid(shape).apply``), so
the box [0, 1] is kept by the same projection as without it.

Measured with ``L = 4``, ``w = 0.8`` (docs/stopping.md § "The first stage as a pyramid"; 2-core
Intel Xeon with AMX, bf16): on the 24 cells of the 256 px panel the automatic stop ended after
a median of 158.5 steps instead of 190 (0.53 of ``-n 300``'s instead of 0.63), with the
evaluator's content and style distances +1.2% and +0.7% from ``-n 300``'s in the median (pixels:
+1.0%, +2.4%), but the pictures look softer, with fewer fine strokes and often another
arrangement of the painting's shapes, so it is an option and not the default. With each level upsampled straight to the image's size, ``w = 1`` leant the
picture to the painting (content +3.4% after 300 steps on chelsea × *The Starry Night*) and
``w = 0.6`` to the photo (style +13.6%); ``w = 0.8`` between them. ``M`` is applied twice a
step; each application cost 3.0-3.8 ms at 256 px inside a run with the adjoint through autograd
(about 6% of a step), about 1.7 ms less with :meth:`Pyramid.adjoint` as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Coarser levels below the image (the coarsest has 1/16 of its side) and the weight of each
#: level against the one above it.
LEVELS = 4
WEIGHT = 0.8


class Pyramid:
    """The linear map ``P: z -> z₀ + w·up(z₁ + w·up(z₂ + …))`` for images of shape ``shape`` (N, C,
    H, W), ``z`` flat: the image's values first, then each coarser level's (sides rounded up)."""

    def __init__(self, shape: tuple[int, ...], levels: int = LEVELS, weight: float = WEIGHT):
        n, c, h, w = shape
        self.shapes = [(n, c, h, w)] + [(n, c, -(-h // 2**k), -(-w // 2**k)) for k in range(1, levels + 1)]
        self.sizes = [a * b * p * q for (a, b, p, q) in self.shapes]
        self.weight = weight  # level k's weight in the image: wᵏ
        self.numel = sum(self.sizes)

    def _levels(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [part.view(shape) for part, shape in zip(z.split(self.sizes), self.shapes)]

    def render(self, z: torch.Tensor) -> torch.Tensor:
        """The image of ``z``: ``z₀ + w·up(z₁ + w·up(z₂ + …))``, each ``up`` bilinear to the next finer
        level's size (one full-size interpolation in all, the rest on smaller images)."""
        levels = self._levels(z)
        x = levels[-1]
        for finer in reversed(levels[:-1]):
            x = finer + self.weight * F.interpolate(x, size=finer.shape[-2:], mode="bilinear", align_corners=False)
        return x

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        """``Pᵀ g``: the gradient with respect to ``z`` of a loss whose image gradient is ``g``: level
        ``k`` gets ``upᵀ(w · level k-1)``, ``upᵀ`` being bilinear interpolation's own backward. The
        same numbers as autograd through :meth:`render` (same operations, same order), without the
        forward pass on zeros autograd needs: 3.0 against 4.7 ms at 256x384 (2-core Intel Xeon with AMX)."""
        levels = [g.view(self.shapes[0])]
        for shape in self.shapes[1:]:
            finer = levels[-1]
            levels.append(torch.ops.aten.upsample_bilinear2d_backward(
                self.weight * finer, list(finer.shape[-2:]), list(shape), False, None, None))
        return torch.cat([level.reshape(-1) for level in levels])

    def apply(self, g: torch.Tensor) -> torch.Tensor:
        """``M g = P Pᵀ g`` for a flat image-sized ``g``: the preconditioner of
        :class:`restyle.nn.optim.LBFGS` (symmetric, and ``vᵀMv ≥ vᵀv``: ``I`` plus the coarser levels' terms)."""
        return self.render(self.adjoint(g.view(self.shapes[0]))).reshape(-1)
