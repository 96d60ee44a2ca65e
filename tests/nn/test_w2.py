"""The Wasserstein-2 style loss: its value, its gradient, and the square-root methods."""

from __future__ import annotations

import pytest
import torch

from restyle.nn.w2 import W2StyleLoss, mean_cov, sqrtm_eigh, trace_sqrt

# Numerically sensitive: scripts/test.sh runs these again with AVX2 kernels and no native bf16.
pytestmark = pytest.mark.numeric


def features(seed: int, c: int = 3, hw: int = 5, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=gen, dtype=dtype)
    f = torch.randn(1, c, hw * hw, generator=gen, dtype=dtype)
    return (mix @ f[0] + torch.randn(c, 1, generator=gen, dtype=dtype)).reshape(1, c, hw, hw)


@pytest.mark.parametrize("method", ["eigh", "newton-schulz"])
def test_w2_loss_is_zero_at_its_target_and_positive_elsewhere(method):
    target = features(0)
    loss = W2StyleLoss(*mean_cov(target), method=method)
    assert float(loss(target)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(features(1))) > 0.05


def test_w2_loss_equals_the_closed_form_for_one_channel():
    """One channel: W₂² = (μ − μₛ)² + (σ − σₛ)², divided by μₛ² + σₛ²."""
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(1, 1, 6, 6, generator=gen, dtype=torch.float64) * 2.0 + 1.0
    b = torch.randn(1, 1, 6, 6, generator=gen, dtype=torch.float64) * 0.5 - 0.3
    (ma, ca), (mb, cb) = mean_cov(a), mean_cov(b)
    expected = ((ma - mb) ** 2 + (ca.sqrt() - cb.sqrt()) ** 2) / (ma**2 + ca)
    for method in ("eigh", "newton-schulz"):
        assert float(W2StyleLoss(ma, ca, method=method)(b)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("method", ["eigh", "newton-schulz"])
def test_w2_loss_gradient_passes_gradcheck_in_float64(method):
    loss = W2StyleLoss(*mean_cov(features(0)), method=method)
    x = features(1).requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (x,), eps=1e-6, atol=1e-5)


def test_newton_schulz_trace_of_the_square_root_agrees_with_the_eigendecomposition():
    f = torch.relu(features(2, c=32, hw=12))
    _, cov = mean_cov(f)
    assert float(trace_sqrt(cov, "newton-schulz")) == pytest.approx(float(trace_sqrt(cov, "eigh")), rel=1e-4)
    root = sqrtm_eigh(cov)
    torch.testing.assert_close(root @ root, cov, rtol=1e-6, atol=1e-8)


def test_w2_blend_of_one_style_is_that_style_and_of_two_is_their_mixture():
    a, b = mean_cov(features(0)), mean_cov(features(1))
    mu, cov = W2StyleLoss.blended_target([a, b], [1.0, 0.0])
    torch.testing.assert_close(mu, a[0])
    torch.testing.assert_close(cov, a[1])
    both = torch.cat([features(0).reshape(3, -1), features(1).reshape(3, -1)], dim=1).reshape(1, 3, 5, 10)
    mu, cov = W2StyleLoss.blended_target([a, b], [1.0, 1.0])
    torch.testing.assert_close(mu, mean_cov(both)[0])
    torch.testing.assert_close(cov, mean_cov(both)[1])
