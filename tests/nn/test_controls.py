"""Specification of the artistic controls (GitHub issue 5; Gatys et al. 2017, Luan et al. 2017):
each test checks the defining property of one control on tiny images (32-64 px, few iterations)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import restyle
from restyle import cli
from restyle.cli.options import run_options
from restyle.config import Config
from restyle.engine import StyleTransfer, stopping
from restyle.errors import ConfigError
from restyle.io import images
from restyle.io.history import HISTORY_FIELDS, history_csv
from restyle.io.record import read_run_record
from restyle.nn import controls, losses, matting

# Numerically sensitive: scripts/test.sh runs these again with AVX2 kernels and no native bf16.
pytestmark = pytest.mark.numeric

FAST = {"device": "cpu", "precision": "fp32", "seed": 0}


def content_at(path: Path, size: int) -> torch.Tensor:
    """The content image as the engine sees it at longest side ``size``."""
    return images.to_tensor(images.resize_longest(images.load_image(path), size))


def half_mask(path: Path, size: tuple[int, int], left: bool = True) -> Path:
    """A mask (``size`` = width, height) white on the left (or right) half."""
    w, h = size
    a = np.zeros((h, w), np.uint8)
    if left:
        a[:, : w // 2] = 255
    else:
        a[:, w // 2:] = 255
    Image.fromarray(a).save(path)
    return path


# ---- colour -------------------------------------------------------------------------------------


def test_recombine_luminance_keeps_chroma_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 16, 16, generator=gen)
    y = torch.rand(1, 1, 16, 16, generator=gen) * 1.4 - 0.2  # includes out-of-gamut luminances
    out = controls.recombine_luminance(y, content)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(controls.chroma(out), controls.chroma(content), atol=1e-5)


def test_luminance_mode_output_has_the_contents_chroma(content: Path, style: Path) -> None:
    result = restyle.stylize(content, style, size=64, iterations=8, preserve_color="luminance", **FAST)
    out = images.to_tensor(result.image)
    ref = content_at(content, 64)
    # chroma equal up to 8-bit rounding (|ΔI|, |ΔQ| <= 1.2 * 0.5/255 analytically)
    assert (controls.chroma(out) - controls.chroma(ref)).abs().max() < 3 / 255
    # ... while the luminance was stylised
    assert (controls.luminance(out) - controls.luminance(ref)).abs().mean() > 0.02


def test_match_luminance_gives_the_contents_mean_and_std() -> None:
    gen = torch.Generator().manual_seed(1)
    s = torch.rand(1, 1, 32, 32, generator=gen) * 0.3 + 0.1
    c = torch.rand(1, 1, 32, 32, generator=gen) * 0.5 + 0.3
    m = controls.match_luminance(s, c)
    assert m.mean() == pytest.approx(c.mean().item(), abs=1e-5)
    assert m.std() == pytest.approx(c.std().item(), abs=1e-5)


def test_histogram_mode_matches_colour_mean_and_covariance(content: Path, style: Path) -> None:
    c = content_at(content, 64)
    s = content_at(style, 64)
    mu_c, cov_c = controls.color_stats(c)
    exact = controls.match_color(s, c, clamp=False)
    mu, cov = controls.color_stats(exact)
    assert torch.allclose(mu, mu_c, atol=1e-5) and torch.allclose(cov, cov_c, atol=1e-6)
    clamped = controls.match_color(s, c)  # what the engine uses: clamped to [0, 1]
    assert clamped.min() >= 0 and clamped.max() <= 1
    mu, cov = controls.color_stats(clamped)
    mu_s, cov_s = controls.color_stats(s)
    assert (mu - mu_c).abs().max() < 0.02 and (cov - cov_c).abs().max() < 0.1 * cov_c.abs().max()
    assert (mu_s - mu_c).abs().max() > 0.1  # the style's colours really were different


def test_histogram_mode_targets_are_the_recoloured_styles(content: Path, style: Path) -> None:
    cfg = Config(size=64, preserve_color="histogram", **FAST)
    st = StyleTransfer(cfg)
    c_img, s_imgs = st.load_inputs(content, [style])
    st.set_targets(c_img, s_imgs)
    recoloured = controls.match_color(images.to_tensor(s_imgs[0]), images.to_tensor(c_img))
    expected = losses.gram(st.features(recoloured, ["block1_conv1"])["block1_conv1"])
    assert torch.allclose(st.style_losses["block1_conv1"].target, expected)


# ---- regions ------------------------------------------------------------------------------------


def test_region_without_style_stays_content_like(content: Path, style: Path, tmp_path: Path) -> None:
    ref = content_at(content, 64)
    h, w = ref.shape[-2:]
    mask = half_mask(tmp_path / "left.png", (w, h))
    result = restyle.stylize(content, style, size=64, iterations=25, masks=[str(mask)], **FAST)
    diff = (images.to_tensor(result.image) - ref).abs().mean(1)[0]  # H x W
    band = w // 8  # leave out the boundary, where deep layers' receptive fields straddle it
    styled = diff[:, : w // 2 - band].mean()
    unstyled = diff[:, w // 2 + band:].mean()
    assert unstyled < 0.5 * styled, (float(unstyled), float(styled))


def test_label_image_regions_map_to_styles_in_reading_order(tmp_path: Path) -> None:
    a = np.zeros((20, 30, 3), np.uint8)
    a[:10, 10:] = (0, 0, 255)  # blue, first seen at (0, 10)
    a[10:, :] = (255, 0, 0)  # red, first seen at (10, 0)
    a[:10, :10] = (0, 0, 0)  # black: no style (first seen at (0, 0))
    a[0, 29] = (250, 3, 2)  # a stray pixel (antialiasing/JPEG) joins the nearest colour
    masks, colours = controls.label_masks(Image.fromarray(a), 2, min_fraction=0.01)
    assert colours == [(0, 0, 255), (255, 0, 0)]
    assert masks[0].sum() == 10 * 20 - 1 and masks[1].sum() == 10 * 30 + 1
    assert (masks[0] + masks[1])[0, 0, :10, :10].sum() == 0
    with pytest.raises(ConfigError, match="2 non-black region colour"):
        controls.label_masks(Image.fromarray(a), 3)


def test_label_image_equals_the_same_masks(content: Path, style: Path, tmp_path: Path) -> None:
    h, w = content_at(content, 64).shape[-2:]
    mask = half_mask(tmp_path / "left.png", (w, h))
    labels = np.zeros((h, w, 3), np.uint8)
    labels[:, : w // 2] = (200, 30, 30)  # one colour, left half; black right half: no style
    Image.fromarray(labels).save(tmp_path / "labels.png")
    by_mask = restyle.stylize(content, style, size=64, iterations=3, masks=[str(mask)], **FAST)
    by_label = restyle.stylize(content, style, size=64, iterations=3, label_image=str(tmp_path / "labels.png"), **FAST)
    assert np.array_equal(np.asarray(by_mask.image), np.asarray(by_label.image))
    assert any("label image regions: #c81e1e -> style 1" in n for n in by_label.notes)


def test_full_mask_is_the_plain_style_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(1, 8, 6, 5, generator=gen)
    assert torch.allclose(losses.masked_gram(f, torch.ones(1, 1, 6, 5)), losses.gram(f))
    target = losses.gram(torch.rand(1, 8, 6, 5, generator=gen))
    guided = losses.GuidedStyleLoss([torch.ones(1, 1, 6, 5)], [target])
    assert torch.allclose(guided(f), losses.StyleLoss(target)(f))


def test_layer_masks_follow_the_networks_pooling() -> None:
    m = torch.zeros(1, 1, 37, 20)
    m[..., :10] = 1
    small = controls.layer_mask(m, 4)
    assert small.shape[-2:] == (9, 5)  # floor, as max_pool2d(2, 2) twice
    assert torch.equal(small[0, 0, 0], torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0]))


# ---- photo mode ---------------------------------------------------------------------------------


def _naive_laplacian(img: np.ndarray, eps: float) -> np.ndarray:
    h, w, _ = img.shape
    out = np.zeros((h * w, h * w))
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            idx = [(y + dy) * w + x + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            win = img.reshape(-1, 3)[idx]
            d = win - win.mean(0)
            inv = np.linalg.inv(d.T @ d / 9 + eps / 9 * np.eye(3))
            out[np.ix_(idx, idx)] += np.eye(9) - (1 + d @ inv @ d.T) / 9
    return out


def test_matting_laplacian_matches_the_definition() -> None:
    img = np.random.default_rng(0).random((7, 9, 3))
    fast = matting.matting_laplacian(img, eps=1e-4, chunk_pixels=8).toarray()  # several chunks
    assert np.allclose(fast, _naive_laplacian(img, 1e-4), atol=1e-5)
    assert np.allclose(fast, fast.T) and np.allclose(fast.sum(1), 0, atol=1e-5)


def test_matting_loss_gradient_is_2LV_over_N() -> None:
    gen = torch.Generator().manual_seed(0)
    guide = torch.rand(1, 3, 12, 10, generator=gen)
    loss = matting.MattingLoss(guide, eps=1e-5)
    x = torch.rand(1, 3, 12, 10, generator=gen, requires_grad=True)
    value = loss(x)
    value.backward()
    mat = matting.matting_laplacian(guide, eps=1e-5)
    v = x.detach()[0].reshape(3, -1).T.double().numpy()
    assert value.item() == pytest.approx(float((v * (mat @ v)).sum()) / 120, rel=1e-4)
    grad = x.grad[0].reshape(3, -1).T.numpy()
    assert np.allclose(grad, 2 * (mat @ v) / 120, atol=1e-6)


def test_photo_mode_lowers_the_matting_energy(content: Path, style2: Path) -> None:
    opts = dict(size=48, iterations=15, **FAST)
    plain = restyle.stylize(content, style2, **opts)
    photo = restyle.stylize(content, style2, photo_weight=controls.DEFAULT_PHOTO_WEIGHT, **opts)
    mat = matting.matting_laplacian(content_at(content, 48))
    e_plain = matting.energy(mat, images.to_tensor(plain.image))
    e_photo = matting.energy(mat, images.to_tensor(photo.image))
    assert e_photo < 0.5 * e_plain, (e_photo, e_plain)
    assert photo.history[-1]["photo"] > 0 and plain.history[-1]["photo"] == 0


def test_guided_filter_keeps_what_the_guide_explains() -> None:
    gen = torch.Generator().manual_seed(0)
    guide = torch.rand(1, 3, 20, 24, generator=gen)
    affine = 0.3 + 0.4 * guide[:, :1] - 0.2 * guide[:, 2:]  # in [0.1, 0.7]
    assert torch.allclose(controls.guided_filter(guide, affine, radius=2, eps=1e-6), affine, atol=1e-3)
    noisy = (affine + 0.1 * torch.randn(affine.shape, generator=gen)).clamp(0, 1)
    filtered = controls.guided_filter(guide, noisy, radius=2, eps=1e-6)
    assert (filtered - affine).abs().mean() < 0.6 * (noisy - affine).abs().mean()


# ---- coarse to fine -----------------------------------------------------------------------------


def test_stage_sizes() -> None:
    assert stopping.stage_sizes(2048, multiscale=True) == [256, 512, 1024, 2048]
    assert stopping.stage_sizes(700, multiscale=True) == [350, 700]
    assert stopping.stage_sizes(300, multiscale=True) == [300]
    assert stopping.stage_sizes(999, scales=[100, 200]) == [100, 200]
    assert stopping.stage_sizes(512) == [512]


def test_each_finer_stage_runs_half_the_iterations_of_the_one_before() -> None:
    assert stopping.stage_iterations(300, 4) == [300, 150, 75, 38]
    assert stopping.stage_iterations(3, 3) == [3, 2, 1]
    assert stopping.stage_iterations(0, 2) == [0, 0]
    assert stopping.stage_iterations(300, 1) == [300]


def test_multiscale_output_size_and_history(content: Path, style: Path) -> None:
    result = restyle.stylize(content, style, scales=[32, 48], iterations=4, **FAST)
    assert max(result.image.size) == 48
    assert [r["scale"] for r in result.history] == [32] * 4 + [48] * 3  # 4 steps, then 2 and the final loss
    assert [r["iteration"] for r in result.history] == list(range(7))  # steps counted over all scales
    text = history_csv(result.history)
    assert text.splitlines()[0] == ",".join(HISTORY_FIELDS) and "scale" in HISTORY_FIELDS
    assert text.splitlines()[1].startswith("0,32,") and text.splitlines()[-1].startswith("6,48,")


def test_coarse_to_fine_is_the_default_from_512_px(content: Path, style: Path) -> None:
    assert Config().multiscale and stopping.stage_sizes(512, multiscale=True) == [256, 512]
    assert stopping.stage_sizes(511, multiscale=True) == [511]
    st = StyleTransfer(Config(size=512, iterations=2, **FAST))
    assert st.stage_sizes(None) == [256, 512]
    assert StyleTransfer(Config(size=512, multiscale=False, **FAST)).stage_sizes(None) == [512]


# ---- configuration: validation and the saved config ---------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"preserve_color": "sepia"}, "preserve-color"),
    ({"photo_weight": -1.0}, "photo-weight"),
    ({"masks": ["a.png"], "label_image": "l.png"}, "not both"),
    ({"masks": ["a.png"], "style_blend": [1.0]}, "style-blend"),
    ({"scales": [512, 256]}, "increase"),
    ({"scales": [8, 64]}, "at least 16"),
    ({"scales": [1.5, 64]}, "whole numbers"),
])
def test_invalid_control_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**options)


def test_mask_count_must_match_styles(content: Path, style: Path, style2: Path, tmp_path: Path) -> None:
    mask = half_mask(tmp_path / "m.png", (8, 8))
    with pytest.raises(ConfigError, match="one per style image"):
        restyle.stylize(content, [style, style2], size=32, iterations=0, masks=[str(mask)], **FAST)


def test_cli_options_reach_the_config(tmp_path: Path) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["run", "c.jpg", "s.jpg", "-o", str(tmp_path / "o.png"), "--preserve-color", "luminance",
                              "--mask", "m1.png", "--style-mask", "none", "--photo", "--photo-filter",
                              "--scales", "64,128", "--multiscale"])
    cfg = Config.from_options(**run_options(args))
    assert cfg.preserve_color == "luminance" and cfg.photo_weight == controls.DEFAULT_PHOTO_WEIGHT
    assert cfg.masks == [str(Path("m1.png").resolve())] and cfg.style_masks == ["none"]
    assert cfg.photo_filter and cfg.scales == [64, 128] and cfg.multiscale
    args = parser.parse_args(["run", "c.jpg", "s.jpg", "-o", "o.png", "--photo-weight", "123", "--label-image", "l.png"])
    cfg = Config.from_options(**run_options(args))
    assert cfg.photo_weight == 123 and cfg.label_image == str(Path("l.png").resolve())


def _from_image_round_trip(tmp_path: Path, argv: list[str], expected: dict) -> None:
    out, again = tmp_path / "out.png", tmp_path / "again.png"
    assert cli.main(["run", *argv, "-o", str(out), "-q", "--device", "cpu", "--precision", "fp32"]) == 0
    saved = read_run_record(out)["config"]
    for key, value in expected.items():
        assert saved[key] == value, key
    assert cli.main(["run", "--from-image", str(out), "-o", str(again), "-q"]) == 0
    assert read_run_record(again)["config"] == saved
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))
    assert json.loads(json.dumps(saved)) == Config.from_dict(saved).to_dict()


def test_masks_photo_histogram_scales_round_trip(content: Path, style: Path, style2: Path, tmp_path: Path) -> None:
    h, w = content_at(content, 32).shape[-2:]
    m1, m2 = half_mask(tmp_path / "m1.png", (w, h)), half_mask(tmp_path / "m2.png", (w, h), left=False)
    sm = half_mask(tmp_path / "sm.png", (16, 16))
    argv = [str(content), str(style), str(style2), "--mask", str(m1), "--mask", str(m2), "--style-mask", "none",
            "--style-mask", str(sm), "--preserve-color", "histogram", "--photo", "--photo-filter", "--scales", "32,40",
            "-n", "2"]
    _from_image_round_trip(tmp_path, argv, {
        "masks": [str(m1), str(m2)], "style_masks": ["none", str(sm)], "preserve_color": "histogram",
        "photo_weight": controls.DEFAULT_PHOTO_WEIGHT, "photo_filter": True, "scales": [32, 40]})


def test_label_luminance_multiscale_round_trip(content: Path, style: Path, tmp_path: Path) -> None:
    labels = np.zeros((10, 10, 3), np.uint8)
    labels[:, :6] = (0, 255, 0)
    Image.fromarray(labels).save(tmp_path / "labels.png")
    argv = [str(content), str(style), "--label-image", str(tmp_path / "labels.png"), "--preserve-color", "luminance",
            "--multiscale", "--photo-weight", "50", "--size", "32", "-n", "2"]
    _from_image_round_trip(tmp_path, argv, {
        "label_image": str(tmp_path / "labels.png"), "preserve_color": "luminance", "multiscale": True,
        "photo_weight": 50.0, "scales": None})
