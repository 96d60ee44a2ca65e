"""Artistic controls (Gatys et al., CVPR 2017, "Controlling Perceptual Factors in Neural Style
Transfer"; Luan et al., CVPR 2017, "Deep Photo Style Transfer"): colour preservation, spatial
masks, coarse-to-fine scales and the guided-filter post-process.

Every function works on float tensors ``B x C x H x W`` in [0, 1] (RGB unless said otherwise).
The matting Laplacian of photo mode lives in :mod:`restyle.nn.matting`. See ``docs/controls.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from restyle.config import COLOR_MODES, DEFAULT_PHOTO_WEIGHT  # noqa: F401  (re-exported)
from restyle.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Colour: luminance-only transfer (YIQ) and colour-histogram matching

#: Rec. 601 luma weights: YIQ's Y, the luminance of the colour modes and of the SSIM metric.
LUMA = (0.299, 0.587, 0.114)
#: RGB -> YIQ (NTSC), the colour space Gatys et al. 2017 use for luminance-only transfer.
YIQ = torch.tensor([
    LUMA,
    [0.595716, -0.274453, -0.321263],
    [0.211456, -0.522591, 0.311135],
], dtype=torch.float64)
YIQ_INV = torch.linalg.inv(YIQ)


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(x.dtype).to(x.device), x)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    return _apply(YIQ, x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return _apply(YIQ_INV, x)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """The Y (Rec. 601 luma) channel, ``B x 1 x H x W``, of RGB ``B x 3 x H x W`` in [0, 1]."""
    return rgb_to_yiq(x)[:, :1]


def chroma(x: torch.Tensor) -> torch.Tensor:
    """The I, Q (chroma) channels, ``B x 2 x H x W``."""
    return rgb_to_yiq(x)[:, 1:]


def gray3(y: torch.Tensor) -> torch.Tensor:
    """A luminance channel replicated to the 3 channels the network reads."""
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """The style luminance shifted and scaled to the content's mean and standard deviation
    (Gatys et al. 2017, section 5.1), clamped to [0, 1]."""
    s_mean, s_std = style_y.mean(), style_y.std()
    c_mean, c_std = content_y.mean(), content_y.std()
    return ((style_y - s_mean) * (c_std / s_std.clamp_min(1e-6)) + c_mean).clamp(0, 1)


def recombine_luminance(y: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """RGB from luminance ``y`` (``B x 1 x H x W``) and the chroma (I, Q) of ``content``.

    Where ``y`` with that chroma would leave the RGB cube, ``y`` is clipped to the range in
    which it is representable (per pixel), so the result's chroma is exactly the content's
    (up to 8-bit rounding) rather than distorted by clamping each RGB channel.
    """
    iq = chroma(content.double())
    offset = _apply(YIQ_INV[:, 1:], iq)  # RGB = Y + offset, per channel
    low = (-offset).amax(1, keepdim=True)
    high = (1 - offset).amin(1, keepdim=True)
    y = torch.maximum(torch.minimum(y.double(), high), low)
    return (y + offset).clamp(0, 1).to(content.dtype)


def _sqrtm(cov: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(floor) ** power) @ vectors.T


def color_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3) and covariance (3 x 3) of the pixel colours of ``x`` (``1 x 3 x H x W``), float64."""
    pixels = x.double().reshape(3, -1)
    mean = pixels.mean(1)
    centred = pixels - mean[:, None]
    return mean, centred @ centred.T / pixels.shape[1]


def match_color(style: torch.Tensor, content: torch.Tensor, *, clamp: bool = True, floor: float = 1e-8) -> torch.Tensor:
    """``style`` with its colour mean and covariance matched to the content's (Gatys et al.
    2017, section 5.2): ``x' = A (x − μ_s) + μ_c`` with ``A = Σ_c^½ Σ_s^-½`` (symmetric matrix
    square roots via ``eigh``), clamped to [0, 1] unless ``clamp=False``."""
    mu_s, cov_s = color_stats(style)
    mu_c, cov_c = color_stats(content)
    a = _sqrtm(cov_c, 0.5, 0.0) @ _sqrtm(cov_s, -0.5, floor)
    pixels = style.double().reshape(3, -1)
    out = (a @ (pixels - mu_s[:, None]) + mu_c[:, None]).reshape(style.shape)
    if clamp:
        out = out.clamp(0, 1)
    return out.to(style.dtype)


# ---------------------------------------------------------------------------------------------
# Spatial control: masks and label images


def image_to_mask(img: Any) -> torch.Tensor:
    """A grayscale mask (``1 x 1 x H x W`` in [0, 1]; white = 1) from an 8-bit image."""
    gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(gray)[None, None]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``mask`` resized to ``size`` = (height, width): area averaging when shrinking (soft edges,
    no aliasing), bilinear when enlarging."""
    h, w = mask.shape[-2:]
    if (h, w) == tuple(size):
        return mask
    if size[0] <= h and size[1] <= w:
        return F.interpolate(mask, size=size, mode="area")
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def label_masks(img: Any, n_styles: int, *, min_fraction: float = 0.002, black: int = 32,
                role: str = "label image") -> tuple[list[torch.Tensor], list[tuple[int, int, int]]]:
    """Masks from a label image: one per region colour that is not black, in reading order
    (the order in which each region's first pixel appears, row by row from the top left).

    Colours covering less than ``min_fraction`` of the image are JPEG/antialiasing noise: their
    pixels join the nearest region colour. A colour whose channels are all <= ``black`` marks
    pixels that get no style (content only). Returns ``(masks, colours)``, masks
    ``1 x 1 x H x W`` at the label image's size.
    """
    rgb = np.asarray(img.convert("RGB"), dtype=np.int32)
    flat = rgb.reshape(-1, 3)
    colours, first, counts = np.unique(flat, axis=0, return_index=True, return_counts=True)
    keep = counts >= max(1, min_fraction * flat.shape[0])
    colours, first = colours[keep], first[keep]
    # each pixel -> nearest kept colour (exact colours map to themselves)
    codes = flat[:, 0] * 65536 + flat[:, 1] * 256 + flat[:, 2]
    uniq, inverse = np.unique(codes, return_inverse=True)
    uniq_rgb = np.stack([uniq // 65536, (uniq // 256) % 256, uniq % 256], 1)
    nearest = ((uniq_rgb[:, None, :] - colours[None, :, :]) ** 2).sum(-1).argmin(1)
    label = nearest[inverse.reshape(-1)]
    # reading order of each region's first pixel (after the nearest-colour assignment)
    region_first = np.full(len(colours), flat.shape[0])
    np.minimum.at(region_first, label, np.arange(flat.shape[0]))
    order = [k for k in np.argsort(region_first, kind="stable") if not (colours[k] <= black).all()]
    if len(order) != n_styles:
        found = ", ".join("#%02x%02x%02x" % tuple(colours[k]) for k in order) or "none"
        raise ConfigError(f"{role} has {len(order)} non-black region colour(s) ({found}) for {n_styles} style image(s); "
                          "give one style image per colour (black regions get no style)")
    h, w = rgb.shape[:2]
    masks = [torch.from_numpy((label == k).reshape(h, w).astype(np.float32))[None, None] for k in order]
    found_colours = [(int(colours[k][0]), int(colours[k][1]), int(colours[k][2])) for k in order]
    return masks, found_colours


def layer_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """A pixel mask at the resolution of a layer of ``stride``: averaged 2x2 (floor, as a network
    pools) while the stride halves, so each feature position gets the share of its cell that the
    mask covers; an odd remainder is averaged in one window."""
    while stride > 1 and stride % 2 == 0:
        mask = F.avg_pool2d(mask, 2, 2)
        stride //= 2
    if stride > 1:
        mask = F.avg_pool2d(mask, stride, stride)
    return mask


# ---------------------------------------------------------------------------------------------
# Coarse-to-fine: the next stage's start (the stages' sizes and steps: restyle.engine.stopping)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` resized (bicubic) to ``size`` = (height, width), clamped to [0, 1]: the next stage's start."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def add_detail(x: torch.Tensor, content: torch.Tensor, coarse: tuple[int, int]) -> torch.Tensor:
    """``x`` (an upsampled coarse result, ``content``'s size) plus ``content``'s detail finer than
    ``coarse`` = (height, width): ``content`` less itself taken down to ``coarse`` (area) and back up
    (bicubic), clamped to [0, 1]. The coarse result holds the composition and the painting's marks
    at its scale; what it cannot hold is the photo's finer detail, which the content loss wants back."""
    size = (int(content.shape[-2]), int(content.shape[-1]))
    low = F.interpolate(F.interpolate(content, size=coarse, mode="area"), size=size, mode="bicubic", align_corners=False)
    return (x + content - low).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Post-filter


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)² window around each pixel (windows cut at the border)."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def default_filter_radius(longest: int) -> int:
    return max(1, round(longest / 128))


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int | None = None, eps: float = 1e-2) -> torch.Tensor:
    """He et al.'s colour guided filter: ``src`` (``1 x C x H x W``) fitted in each window as
    an affine function of the RGB ``guide`` — the local-affine colour model of the matting
    Laplacian — which removes texture and noise that the guide's edges do not explain.
    ``radius`` defaults to 1 px per 128 px of the longest side; ``eps`` (in [0,1]² colour
    units) sets how strong an edge of the guide must be to be kept."""
    if radius is None:
        radius = default_filter_radius(max(guide.shape[-2:]))
    g = guide.double()
    p = src.double()
    _, c, h, w = p.shape
    mean_g = _box(g, radius)  # 1,3,H,W
    mean_p = _box(p, radius)  # 1,C,H,W
    gg = (g[:, :, None] * g[:, None, :]).reshape(1, 9, h, w)
    cov_gg = _box(gg, radius).reshape(1, 3, 3, h, w) - mean_g[:, :, None] * mean_g[:, None, :]
    gp = (g[:, :, None] * p[:, None, :]).reshape(1, 3 * c, h, w)
    cov_gp = _box(gp, radius).reshape(1, 3, c, h, w) - mean_g[:, :, None] * mean_p[:, None, :]
    sigma = cov_gg.permute(0, 3, 4, 1, 2) + eps * torch.eye(3, dtype=g.dtype)  # 1,H,W,3,3
    a = torch.linalg.solve(sigma, cov_gp.permute(0, 3, 4, 1, 2))  # 1,H,W,3,C
    b = mean_p - torch.einsum("bhwkc,bkhw->bchw", a, mean_g)
    mean_a = _box(a.permute(0, 3, 4, 1, 2).reshape(1, 3 * c, h, w), radius).reshape(1, 3, c, h, w)
    mean_b = _box(b, radius)
    out = torch.einsum("bkchw,bkhw->bchw", mean_a, g) + mean_b
    return out.clamp(0, 1).to(src.dtype)


# ---------------------------------------------------------------------------------------------
# Photo mode


