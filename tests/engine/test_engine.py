"""Specification of the core pipeline (issue "Core: Gatys style transfer end to end"):
the backbone's layers, the optimisation, reproducibility, style blending, presets,
precision and what happens when the loss stops being finite.

Every run uses the real embedded VGG19 on tiny images (32-64 px) for a few iterations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import restyle
from restyle.backbone import bf16_cpu_ok, build_backbone
from restyle.cli import main
from restyle.config import Config
from restyle.engine import StyleTransfer
from restyle.engine.loop import OptimizerSettings, lbfgs_history, make_optimizer
from restyle.errors import WeightsError
from restyle.io import images
from restyle.io.history import HISTORY_FIELDS
from restyle.io.record import read_run_record, side_paths
from restyle.nn.losses import StyleLoss, gram
from restyle.nn.vgg import VGGFeatures
from restyle.spec import GATYS_STYLE, LAYER_SETS, conv_names
from restyle.weights import load_weights
from shared_helpers import EXAMPLES

# Numerically sensitive: scripts/test.sh runs these again with AVX2 kernels and no native bf16.
pytestmark = pytest.mark.numeric

CPU = dict(device="cpu", precision="fp32")


def pixels(img: Image.Image | str) -> np.ndarray:
    if not isinstance(img, Image.Image):
        with Image.open(img) as f:
            return np.asarray(f.convert("RGB")).copy()
    return np.asarray(img.convert("RGB")).copy()


@pytest.fixture(scope="module")
def vgg19() -> VGGFeatures:
    return build_backbone("vgg19")


# ---- the backbone ------------------------------------------------------------------------------


def by_hand(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """VGG19 up to block2_conv2, written out with torch.nn.functional from the raw weights."""
    convs = load_weights("vgg19").convs
    bgr_mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    x = image[:, [2, 1, 0]] * 255.0 - bgr_mean  # Caffe: RGB -> BGR, 0-255, minus the means
    out = {}
    x = out["block1_conv1"] = F.relu(F.conv2d(x, *convs["block1_conv1"], padding=1))
    x = F.relu(F.conv2d(x, *convs["block1_conv2"], padding=1))
    x = out["pool1"] = F.max_pool2d(x, kernel_size=2, stride=2)
    x = F.relu(F.conv2d(x, *convs["block2_conv1"], padding=1))
    x = out["block2_conv2"] = F.relu(F.conv2d(x, *convs["block2_conv2"], padding=1))
    return out


def test_layers_are_vggs_convs_after_relu_with_caffe_preprocessing(vgg19, content):
    img = images.resize_to(images.load_image(content), (48, 40))  # not square: catches transposes
    x = images.to_tensor(img)
    expected = by_hand(x)
    got = vgg19(x, ["block2_conv2", "pool1", "block1_conv1"])
    assert set(got) == {"block2_conv2", "pool1", "block1_conv1"}
    assert got["pool1"].shape == (1, 64, 20, 24)
    assert got["block2_conv2"].shape == (1, 128, 20, 24)
    for name, want in expected.items():
        assert got[name].shape == want.shape
        scale = want.abs().max()
        assert scale > 0 and (want > 0).float().mean() > 0.05  # a live activation, not all zero
        torch.testing.assert_close(got[name], want, rtol=1e-4, atol=1e-4 * float(scale))


def test_forward_stops_at_the_deepest_requested_layer():
    net = VGGFeatures("vgg19")  # random weights: only which convs run matters here
    ran: list[str] = []
    for name, conv in net.convs.items():
        conv.register_forward_hook(lambda module, args, output, name=name: ran.append(name))
    x = torch.rand(1, 3, 32, 32)

    assert list(net(x, ["block1_conv1"])) == ["block1_conv1"]
    assert ran == ["block1_conv1"]

    ran.clear()
    assert net(x, ["pool1"])["pool1"].shape == (1, 64, 16, 16)
    assert ran == ["block1_conv1", "block1_conv2"]

    ran.clear()
    net(x, ["block4_conv2", "block1_conv1"])
    assert ran == conv_names("vgg19")[: conv_names("vgg19").index("block4_conv2") + 1]
    assert "block5_conv1" not in ran


def test_embedded_vgg19_features_tell_paintings_apart(vgg19):
    """ImageNet features: two halves of one painting have closer Gram matrices than two paintings."""
    starry = images.load_image(EXAMPLES / "starry_night.jpg")
    scream = images.resize_longest(images.load_image(EXAMPLES / "the_scream.jpg"), 128)
    w, h = starry.size
    left = images.resize_longest(starry.crop((0, 0, w // 2, h)), 128)
    right = images.resize_longest(starry.crop((w // 2, 0, w, h)), 128)

    def style_distance(a: Image.Image, b: Image.Image) -> float:
        fa = vgg19(images.to_tensor(a), GATYS_STYLE)
        fb = vgg19(images.to_tensor(b), GATYS_STYLE)
        return sum(float(StyleLoss(gram(fa[n]))(fb[n])) for n in GATYS_STYLE)

    same = style_distance(left, right)
    different = min(style_distance(left, scream), style_distance(right, scream))
    assert math.isfinite(same) and same > 0
    assert different > 2 * same, (same, different)


# ---- optimisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(dict(optimizer="lbfgs", iterations=5), id="lbfgs"),
        pytest.param(dict(optimizer="adam", iterations=8, lr=0.05), id="adam"),
        pytest.param(
            dict(optimizer="lbfgs", iterations=8, line_search=True),
            id="lbfgs-line-search",
        ),
    ],
)
def test_loss_falls_and_history_has_a_row_per_iteration(content, style, options):
    result = restyle.stylize(content, style, size=48, **CPU, **options)
    history = result.history
    n = options["iterations"]
    assert len(history) == n + 1
    assert [row["iteration"] for row in history] == list(range(n + 1))
    for row in history:
        assert tuple(row) == HISTORY_FIELDS
        assert all(math.isfinite(row[k]) for k in HISTORY_FIELDS)
        c = result.config
        expected = c.content_weight * row["content"] + c.style_weight * row["style"] + c.tv_weight * row["tv"]
        expected += getattr(c, "photo_weight", 0.0) * row.get("photo", 0.0)  # an optional extra term
        assert row["total"] == pytest.approx(expected, rel=1e-4)
    assert [r["seconds"] for r in history] == sorted(r["seconds"] for r in history)
    assert history[0]["content"] == pytest.approx(0, abs=1e-6)  # starts from the content image
    assert history[-1]["total"] < 0.8 * history[0]["total"], [r["total"] for r in history]
    assert history[-1]["style"] < 0.8 * history[0]["style"]
    assert result.final_loss == history[-1]["total"]
    assert result.stopped_early is None
    if options.get("line_search"):  # a strong-Wolfe step never increases the loss, and moves
        totals = [r["total"] for r in history]
        assert all(b < a for a, b in zip(totals, totals[1:])), totals


def test_saved_config_reproduces_the_same_image(content, style, tmp_path):
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    result = restyle.stylize(content, style, output=first, size=48, iterations=5, **CPU)
    assert np.array_equal(pixels(first), pixels(result.image))
    record = read_run_record(first)
    assert record["config"]["iterations"] == 5 and record["config"]["size"] == 48
    assert record["inputs"]["content"] == str(content.resolve())

    assert main(["run", "--from-image", str(first), "-o", str(again), "-q", "--no-history"]) == 0
    assert np.array_equal(pixels(again), pixels(first))
    assert read_run_record(again)["config"] == record["config"]


def test_noise_init_same_seed_same_image_other_seed_other_image(content, style):
    def run(seed: int) -> np.ndarray:
        result = restyle.stylize(content, style, size=32, iterations=2, init="noise", seed=seed, **CPU)
        return pixels(result.image)

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 10  # noise starts: very different images


def test_style_blend_one_zero_is_the_first_style_alone(content, style, style2):
    alone = restyle.stylize(content, [style], size=32, iterations=3, **CPU)
    blended = restyle.stylize(content, [style, style2], style_blend=[1, 0], size=32, iterations=3, **CPU)
    mixed = restyle.stylize(content, [style, style2], style_blend=[1, 1], size=32, iterations=3, **CPU)
    assert np.array_equal(pixels(blended.image), pixels(alone.image))
    assert [r["total"] for r in blended.history] == [r["total"] for r in alone.history]
    assert mixed.history[0]["style"] != pytest.approx(alone.history[0]["style"], rel=1e-3)


# ---- presets and weights -----------------------------------------------------------------------


def test_seed_preset_is_vgg16_with_the_seed_layers():
    config = Config.from_options(preset="seed")
    assert config.model == "vgg16" and config.preset == "seed"
    assert config.style_layers == {name: 1.0 for name in LAYER_SETS["seed"]}
    assert list(config.style_layers) == ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]
    assert config.content_layers == {"block2_conv2": 1.0}
    assert Config.from_options(preset="seed", model="vgg19").model == "vgg19"  # explicit options win


def test_seed_preset_without_vgg16_weights_explains(no_vgg16_weights, content, style, tmp_path, capsys):
    with pytest.raises(WeightsError, match=r"^no VGG16 ImageNet weights found: pass --weights PATH"):
        restyle.stylize(content, style, preset="seed", size=32, iterations=1, **CPU)

    out = tmp_path / "out.png"
    code = main(["run", str(content), str(style), "-o", str(out), "--preset", "seed", "--size", "32", "-n", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("restyle: error: no VGG16 ImageNet weights found") and err.count("\n") == 1
    assert "--weights download" in err and "--model vgg19" in err
    assert not out.exists()


def test_seed_preset_falls_back_to_vgg19(no_vgg16_weights, content, style, tmp_path):
    out = tmp_path / "fallback.png"
    result = restyle.stylize(content, style, preset="seed", fallback_vgg19=True, size=32, iterations=2,
                             output=out, **CPU)
    assert result.config.model == "vgg19"
    assert result.config.style_layers == {name: 1.0 for name in LAYER_SETS["seed"]}
    assert any("VGG16 weights unavailable" in n and "VGG19" in n for n in result.notes), result.notes
    assert len(result.history) == 3
    record = read_run_record(out)
    assert record["config"]["model"] == "vgg19" and record["notes"] == result.notes


# ---- precision ---------------------------------------------------------------------------------


@pytest.mark.skipif(not bf16_cpu_ok(), reason="this CPU has no native bf16 (or RESTYLE_NO_NATIVE_BF16=1)")
def test_bf16_and_fp32_reach_the_same_loss(content, style):
    options = dict(size=64, iterations=10, optimizer="adam", lr=0.05, device="cpu")
    fp32 = restyle.stylize(content, style, precision="fp32", **options)
    bf16 = restyle.stylize(content, style, precision="bf16", **options)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert fp32.final_loss < 0.8 * fp32.history[0]["total"]
    assert bf16.final_loss == pytest.approx(fp32.final_loss, rel=0.10)


# ---- non-finite loss ---------------------------------------------------------------------------


def nan_from_call(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    """Make StyleTransfer.losses return NaN (with NaN gradients) from its k-th call (0-based) on."""
    real = StyleTransfer.losses
    calls = {"n": 0}

    def losses(self, x):
        parts = real(self, x)
        calls["n"] += 1
        if calls["n"] > k:
            return tuple(p * float("nan") for p in parts)
        return parts

    monkeypatch.setattr(StyleTransfer, "losses", losses)


@pytest.mark.parametrize("sync_every", [1, 4])
def test_nan_loss_stops_and_keeps_the_last_good_image(content, style, monkeypatch, caplog, sync_every):
    """Also when the losses are read to the host in batches (as on a GPU): the NaN appears in the
    middle of the first batch of 4 rows."""
    options = dict(size=32, optimizer="adam", lr=0.05, **CPU)
    two_steps = restyle.stylize(content, style, iterations=2, **options)  # the image after 2 steps
    nan_from_call(monkeypatch, 3)  # Adam: one evaluation per step, so steps 0-2 see finite losses
    result = StyleTransfer(Config(iterations=6, **options), sync_every=sync_every).run(content, [style])
    assert result.stopped_early and "non-finite" in result.stopped_early
    assert result.stopped_early in result.notes
    assert any("non-finite" in r.getMessage() for r in caplog.records if r.name == "restyle")
    assert [r["iteration"] for r in result.history] == [0, 1, 2]
    assert all(math.isfinite(r["total"]) for r in result.history)
    # the image whose loss was last recorded finite: the one after 2 steps
    assert np.array_equal(pixels(result.image), pixels(two_steps.image))


def test_batched_host_reads_give_the_same_rows_in_the_same_order(content, style):
    """Reading the losses every 3 steps (the GPU path) records what reading them every step does,
    calls back once per row with that row's image, and computes the same image."""
    config = Config(size=32, iterations=7, **CPU)
    runs = {}
    for every in (1, 3):
        seen: list[tuple[int, torch.Tensor]] = []
        result = StyleTransfer(config, sync_every=every).run(
            content, [style], on_iteration=lambda row, image, seen=seen: seen.append((row["iteration"], image.clone())))
        runs[every] = (result, seen)
    (one, seen1), (three, seen3) = runs[1], runs[3]
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(three.history) == drop(one.history)
    assert [i for i, _ in seen3] == list(range(8))
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(seen1, seen3))
    assert np.array_equal(pixels(three.image), pixels(one.image))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_reported_final_loss_is_the_loss_of_the_image_delivered(content, style, optimizer):
    """The image is optimised inside [0, 1], so the PNG (clamped, 8-bit) is what was optimised:
    its loss is the last row's, up to 8-bit rounding. (Unconstrained, 5% of the values left
    [0, 1] and clamping raised the loss by a third.)"""
    config = Config(size=64, iterations=40, optimizer=optimizer, **CPU)
    engine = StyleTransfer(config)
    result = engine.run(content, [style])
    with torch.no_grad():
        delivered = float(engine.losses(images.to_tensor(result.image))[0])
    assert delivered == pytest.approx(result.final_loss, rel=0.02)
    assert result.final_loss < 0.5 * result.history[0]["total"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_loop_reads_the_device_only_once_per_sync_interval(content, style, monkeypatch, optimizer):
    """No hidden host syncs in a step (the GPU path): after set-up, the only reads of a tensor's
    value (item, tolist, bool, float, int) are one ``tolist`` per ``sync_every`` steps."""
    engine = StyleTransfer(Config(size=32, iterations=10, optimizer=optimizer, **CPU), sync_every=5)
    reads: list[str] = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _n=name, _r=real, **k: reads.append(_n) or _r(self, *a, **k))
    result = engine.run(content, [style])
    monkeypatch.undo()
    assert len(result.history) == 11
    assert reads == ["tolist"] * 3  # steps 0-4, steps 5-9, the final image's loss


def test_lbfgs_history_shrinks_for_huge_images_only():
    assert lbfgs_history(torch.empty(1, 3, 512, 512, device="meta")) == 50
    assert lbfgs_history(torch.empty(1, 3, 1024, 1024, device="meta")) == 50
    assert lbfgs_history(torch.empty(1, 3, 2048, 2048, device="meta")) == 21  # 2 GiB of history
    assert lbfgs_history(torch.empty(1, 3, 8192, 8192, device="meta")) == 5


def test_a_short_run_allocates_only_the_pairs_it_can_store():
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    settings = OptimizerSettings.from_config(Config(size=64, iterations=4, **CPU))
    assert make_optimizer(x, settings, iterations=4).m == 3  # 4 steps leave 3 pairs
    assert make_optimizer(x, settings, iterations=300).m == 50


def test_a_loss_non_finite_from_the_start_stops_with_the_start_image(content, style, monkeypatch):
    config = Config(size=32, iterations=5, optimizer="adam", lr=1e30, **CPU)
    huge = StyleTransfer(config).run(content, [style])  # a huge step alone cannot: the image stays in [0, 1]
    assert huge.stopped_early is None and all(math.isfinite(r["total"]) for r in huge.history)
    nan_from_call(monkeypatch, 1)  # the start image's loss is finite, the first step's is not
    result = StyleTransfer(config).run(content, [style])
    assert result.stopped_early is not None
    assert len(result.history) == 1  # only the starting image had a finite loss
    start, _ = StyleTransfer(config).load_inputs(content, [style])
    assert np.array_equal(pixels(result.image), pixels(start))


def test_cli_reports_a_stopped_run_and_still_writes_the_image(content, style, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.png"
    nan_from_call(monkeypatch, 1)
    code = main(["run", str(content), str(style), "-o", str(out), "--size", "32", "-n", "4", "--precision", "fp32",
                 "--optimizer", "adam", "-q"])
    err = capsys.readouterr().err
    assert code != 0
    assert "restyle: note: loss became non-finite" in err and "Traceback" not in err
    img = pixels(out)
    assert max(img.shape[:2]) == 32
    assert 20 < img.mean() < 235  # the content photo, not black (NaN) or saturated garbage
    rows = side_paths(out)["csv"].read_text().splitlines()
    assert len(rows) == 2  # header + the one finite row
    assert read_run_record(out)["notes"]


@pytest.mark.parametrize("shape", [(1, 8, 12, 10), (1, 4, 9, 7)])  # even and odd sides
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_without_saved_indices_gives_torchs_gradient_exactly(shape, channels_last):
    """The backbone's max pooling keeps no indices for backward (memory) and finds them again."""
    from restyle.nn.vgg import MaxPool2x2

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    g = torch.rand(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=torch.Generator().manual_seed(2))
    ours = MaxPool2x2.apply(x)
    ref = F.max_pool2d(x, 2, 2)
    assert torch.equal(ours, ref)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_large_images_pool_without_saved_indices(monkeypatch):
    """From LOW_MEMORY_PIXELS up the backbone uses the index-free pooling; the image's gradient is
    the same either way."""

    from restyle.nn import vgg

    net = VGGFeatures("vgg19")
    net.load({n: (torch.randn(c.weight.shape, generator=torch.Generator().manual_seed(i)) * 0.1, torch.zeros(c.bias.shape))
              for i, (n, c) in enumerate(net.convs.items())})
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def grad_and_pools():
        calls = []
        real = vgg.MaxPool2x2.apply
        monkeypatch.setattr(vgg.MaxPool2x2, "apply", lambda t: calls.append(1) or real(t))
        feats = net(x, ["block3_conv1"])["block3_conv1"]
        (g,) = torch.autograd.grad(feats.pow(2).sum(), x)
        monkeypatch.undo()
        return g, len(calls)

    plain, used = grad_and_pools()
    assert used == 0  # 16x16 is below the threshold
    monkeypatch.setattr(vgg, "LOW_MEMORY_PIXELS", 16 * 16)
    low_memory, used = grad_and_pools()
    assert used == 2  # pool1 and pool2 lie before block3_conv1
    assert torch.equal(low_memory, plain)

