"""Image statistics the evaluator (:mod:`restyle.metrics`) computes on prepared images: SSIM of
the luminance (:func:`restyle.nn.controls.luminance`), colour histograms and their 1-Wasserstein distance, total variation. Plain
tensor and NumPy functions, no network."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: SSIM parameters (Wang et al. 2004): Gaussian window size and sigma, and the constants.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
#: Bins per channel of the colour histograms (of 256 levels: 4 levels per bin).
HIST_BINS = 64


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_tensors(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM of two single-channel 1x1xHxW tensors in [0, 1] (valid-window Gaussian SSIM)."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double(), y.double()
    size = min(SSIM_WINDOW, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # odd
    win = _gaussian_window(size, SSIM_SIGMA)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sxy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sxx + syy + SSIM_C2)
    return float((num / den).mean())


def histograms(img) -> np.ndarray:
    """Normalised ``HIST_BINS``-bin histogram per channel (3 x HIST_BINS) of an RGB PIL image."""
    pixels = np.asarray(img, dtype=np.uint8).reshape(-1, 3)
    bins = (pixels.astype(np.int64) * HIST_BINS) // 256
    return np.stack([np.bincount(bins[:, c], minlength=HIST_BINS) / len(bins) for c in range(3)])


def wasserstein_hist(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over channels of the 1-Wasserstein (earth mover's) distance between two normalised
    histograms with bins of width ``1/HIST_BINS`` on [0, 1]: Σ_k |CDF_a(k) − CDF_b(k)| / HIST_BINS."""
    cdf = np.cumsum(a, axis=-1) - np.cumsum(b, axis=-1)
    return float(np.abs(cdf).sum(axis=-1).mean() / HIST_BINS)


def tv_tensor(x: torch.Tensor) -> float:
    """Mean absolute difference over all horizontally and vertically neighbouring pixel pairs
    (all channels) of a 1x3xHxW tensor in [0, 1]."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    return float((dx.sum() + dy.sum()) / (dx.numel() + dy.numel()))
