"""The loss terms compute what their formulas say, with the gradients autograd would give."""

from __future__ import annotations

import pytest
import torch

from restyle.nn.losses import StyleLoss, gram, gram_distance

# Numerically sensitive: scripts/test.sh runs these again with AVX2 kernels and no native bf16.
pytestmark = pytest.mark.numeric


def features(dtype=torch.float64, channels_last=False, seed=0, shape=(1, 8, 6, 5)) -> torch.Tensor:
    f = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if channels_last:
        f = f.contiguous(memory_format=torch.channels_last)
    return f.to(dtype)


def reference(f: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """‖F Fᵀ/(C·H·W) − A‖² · scale by plain autograd-able ops."""
    b, c, h, w = f.shape
    m = f.reshape(b, c, h * w)
    return ((m @ m.transpose(1, 2) / (c * h * w) - target) ** 2).sum() * scale


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_distance_value_and_gradient_are_exact_in_float64(channels_last):
    f = features(channels_last=channels_last).requires_grad_(True)
    target = gram(features(seed=1))
    scale = torch.tensor(3.0, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: gram_distance(x, target, scale), (f,))
    ours, = torch.autograd.grad(gram_distance(f, target, scale), f)
    ref, = torch.autograd.grad(reference(f, target, 3.0), f)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-14)
    assert ours.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_bf16_features_give_an_fp32_loss_and_a_bf16_gradient_close_to_fp32():
    f64 = features(channels_last=True, shape=(1, 16, 12, 10))
    target = gram(features(seed=1, shape=(1, 16, 12, 10)))
    scale = torch.tensor(1.0)
    f16 = f64.to(torch.bfloat16).requires_grad_(True)
    loss = gram_distance(f16, target.float(), scale)
    assert loss.dtype == torch.float32
    grad16, = torch.autograd.grad(loss, f16)
    assert grad16.dtype == torch.bfloat16
    exact = f16.detach().double().requires_grad_(True)  # the same bf16 values, computed exactly
    ref_loss = reference(exact, target, 1.0)
    ref_grad, = torch.autograd.grad(ref_loss, exact)
    # The Gram (so the loss) is fp32: only fp32 rounding. The gradient is one bf16 product.
    assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), rel=1e-5)
    assert float((grad16.double() - ref_grad).norm() / ref_grad.norm()) < 1e-2


def test_style_loss_is_relative_to_its_target():
    target = gram(features(seed=1))
    loss = StyleLoss(target)
    assert float(loss(features(seed=1))) == pytest.approx(0.0, abs=1e-12)
    zeros = torch.zeros(1, 8, 6, 5, dtype=torch.float64)
    assert float(loss(zeros)) == pytest.approx(1.0, rel=1e-6)  # as far as zero is: 1


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_of_bf16_features_is_summed_in_fp32_chunks_with_the_same_result(monkeypatch, channels_last):
    """Large bf16 feature maps are converted to fp32 a chunk of pixels at a time (memory); the
    Gram is the same as converting them all at once."""
    import restyle.nn.losses as losses

    f = features(dtype=torch.bfloat16, channels_last=channels_last, shape=(1, 8, 12, 10))
    whole = gram(f.float())
    monkeypatch.setattr(losses, "GRAM_CHUNK_ELEMENTS", 8 * 7)  # 7 pixels a chunk: 18 chunks, the last short
    chunked = gram(f)
    assert chunked.dtype == torch.float32
    assert torch.allclose(chunked, whole, rtol=1e-6, atol=1e-7)
    target = gram(features(seed=1, shape=(1, 8, 12, 10))).float()
    assert float(gram_distance(f, target, torch.tensor(1.0))) == pytest.approx(
        float(((whole - target) ** 2).sum()), rel=1e-5)

