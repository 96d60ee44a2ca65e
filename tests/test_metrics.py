"""restyle.metrics: the fixed evaluator's metrics give known answers and move the right way;
evaluators of different sizes are independent; the module functions are the default evaluator's."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from restyle import metrics
from restyle.cli import main
from restyle.config import Config
from restyle.io import files, images
from restyle.study.grid import example

CHELSEA, STARRY, SCREAM = example("chelsea.jpg"), example("starry_night.jpg"), example("the_scream.jpg")


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    """The cat at the evaluation size, so that the evaluator does not resample it again."""
    return metrics.prepare(CHELSEA)


def noisy(img: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    a = np.asarray(img, dtype=np.float64) / 255
    a = a + np.random.default_rng(seed).normal(0, sigma, a.shape)
    return Image.fromarray(np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8))


def shifted(img: Image.Image, dx: int) -> Image.Image:
    return Image.fromarray(np.roll(np.asarray(img), dx, axis=1))


def test_identical_images_score_perfectly(cat):
    s = metrics.score(CHELSEA, cat, CHELSEA)  # a path and the image it names: prepared alike
    assert s.content_distance == 0
    assert s.style_distance == 0
    assert s.ssim == pytest.approx(1.0, abs=1e-9)
    assert s.histogram_distance == 0
    assert s.tv > 0  # a photo is not flat


def test_more_noise_scores_worse(cat):
    light, heavy = noisy(cat, 0.05), noisy(cat, 0.2)
    s0, s1, s2 = (metrics.score(x, cat, cat) for x in (cat, light, heavy))
    assert s0.ssim > s1.ssim > s2.ssim
    assert s0.tv < s1.tv < s2.tv
    assert s0.content_distance < s1.content_distance < s2.content_distance
    assert s1.histogram_distance < s2.histogram_distance


def test_a_bigger_shift_scores_worse(cat):
    small, big = shifted(cat, 2), shifted(cat, 12)
    assert 1 > metrics.ssim(small, cat) > metrics.ssim(big, cat)
    assert 0 < metrics.content_distance(small, cat) < metrics.content_distance(big, cat)


def test_style_distance_two_paintings_exceed_two_crops_of_one():
    starry = images.load_image(STARRY)
    w, h = starry.size
    left, right = starry.crop((0, 0, w // 2, h)), starry.crop((w // 2, 0, w, h))
    within = metrics.style_distance(left, right)
    between = metrics.style_distance(STARRY, SCREAM)
    assert 0 < within < between
    assert metrics.histogram_distance(left, right) < metrics.histogram_distance(STARRY, SCREAM)


def test_output_of_another_size_is_resized_to_the_content():
    small = images.resize_longest(images.load_image(CHELSEA), 96)
    d = metrics.content_distance(small, CHELSEA)
    assert 0 < d < 0.5
    assert 0.5 < metrics.ssim(small, CHELSEA) < 1


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.6)
    expected = (2 * 0.2 * 0.6 + metrics.SSIM_C1) / (0.2**2 + 0.6**2 + metrics.SSIM_C1)
    assert metrics.ssim_tensors(a, b) == pytest.approx(expected, rel=1e-6)
    assert metrics.ssim_tensors(a, a) == pytest.approx(1.0)


def test_ssim_of_an_image_and_its_negative_is_negative():
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    assert metrics.ssim_tensors(x, 1 - x) < 0


def test_histogram_distance_known_answers():
    black, grey, white = (Image.new("RGB", (16, 16), (v, v, v)) for v in (0, 128, 255))
    assert metrics.histogram_distance(black, black) == 0
    # All mass moves 32 of 64 bins (grey is bin 32) -> half the [0, 1] range.
    assert metrics.histogram_distance(black, grey) == pytest.approx(0.5)
    assert metrics.histogram_distance(black, white) == pytest.approx(63 / 64)
    # Only the red channel differs: the mean over R, G, B is a third.
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    assert metrics.histogram_distance(black, red) == pytest.approx(63 / 64 / 3)


def test_tv_known_answers():
    assert metrics.total_variation(Image.new("RGB", (256, 256), (90, 10, 200))) == 0
    board = np.indices((256, 256)).sum(axis=0) % 2 * 255
    checker = Image.fromarray(np.repeat(board[:, :, None], 3, axis=2).astype(np.uint8))
    assert metrics.total_variation(checker) == pytest.approx(1.0)
    # Vertical stripes: every horizontal neighbour differs by 1, no vertical one.
    stripes = torch.zeros(1, 3, 10, 11)
    stripes[..., ::2] = 1
    assert metrics.tv_tensor(stripes) == pytest.approx((10 * 10) / (10 * 10 + 9 * 11))


def test_style_blend_matches_a_single_style_when_weights_pick_one(cat):
    one = metrics.style_distance(cat, STARRY)
    picked = metrics.style_distance(cat, [STARRY, SCREAM], style_blend=[1, 0])
    assert picked == pytest.approx(one, rel=1e-6)


def test_evaluator_ignores_run_settings():
    net = metrics.evaluator()
    assert net.arch == "vgg19" and net.pooling == "max"
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert metrics.Evaluator(size=64).network is net  # one frozen network per device, whatever the size


# ---- Evaluator objects --------------------------------------------------------------------


def test_the_module_functions_are_the_default_evaluator(cat):
    out = noisy(cat, 0.1)
    ev = metrics.Evaluator()
    assert metrics.score(out, CHELSEA, STARRY) == ev.score(out, CHELSEA, STARRY)
    assert metrics.score(out, CHELSEA, [STARRY, SCREAM], style_blend=[1, 3]) == \
        ev.score(out, CHELSEA, [STARRY, SCREAM], style_blend=[1, 3])
    assert metrics.content_distance(out, CHELSEA) == ev.content_distance(out, CHELSEA)
    assert metrics.style_distance(out, SCREAM) == ev.style_distance(out, SCREAM)
    assert metrics.ssim(out, CHELSEA) == ev.ssim(out, CHELSEA)
    assert metrics.histogram_distance(out, SCREAM) == ev.histogram_distance(out, SCREAM)
    assert metrics.total_variation(out) == ev.total_variation(out)
    assert metrics.describe() == ev.describe()
    assert metrics.prepare(CHELSEA).size == ev.prepare(CHELSEA).size


def test_evaluators_of_two_sizes_score_side_by_side_without_affecting_each_other(cat):
    out = noisy(cat, 0.1)
    small, large = metrics.Evaluator(size=48), metrics.Evaluator(size=96)
    first = small.score(out, CHELSEA, STARRY)
    other = large.score(out, CHELSEA, STARRY)  # between two uses of the small one, same files
    assert small.score(out, CHELSEA, STARRY) == first
    assert metrics.Evaluator(size=48).score(out, CHELSEA, STARRY) == first  # a fresh one: same numbers
    assert metrics.Evaluator(size=96).score(out, CHELSEA, STARRY) == other
    assert first != other
    assert max(small.prepare(CHELSEA).size) == 48 and max(large.prepare(CHELSEA).size) == 96
    assert "48 px" in small.describe() and "96 px" in large.describe()
    assert max(metrics.prepare(CHELSEA).size) == metrics.EVAL_SIZE == 256  # the default is untouched
    assert "256 px" in metrics.describe()


def test_a_changed_file_is_prepared_again(tmp_path, cat):
    style = tmp_path / "style.jpg"
    shutil.copy(STARRY, style)
    ev = metrics.Evaluator(size=48)
    before = ev.style_distance(cat, style)
    assert ev.style_distance(cat, style) == before  # cached by the file's path, mtime and size
    shutil.copy(SCREAM, style)
    os.utime(style, ns=(1, 1))  # another mtime even on a coarse clock
    assert ev.style_distance(cat, style) == metrics.Evaluator(size=48).style_distance(cat, SCREAM) != before


def test_an_evaluator_pickles_as_its_settings(cat):
    ev = metrics.Evaluator(size=48)
    again = pickle.loads(pickle.dumps(ev))
    assert (again.size, again.device) == (48, torch.device("cpu"))
    assert again.score(cat, CHELSEA, STARRY) == ev.score(cat, CHELSEA, STARRY)


# ---- restyle score ------------------------------------------------------------------------


def test_score_cli_table_and_json(tmp_path, capsys):
    out = tmp_path / "out.png"
    files.save_png(noisy(metrics.prepare(CHELSEA), 0.1), out)
    assert main(["score", str(out), "--content", CHELSEA, "--style", STARRY]) == 0
    table = capsys.readouterr().out
    for name in metrics.METRIC_NAMES:
        assert name in table
    assert main(["score", str(out), "--content", CHELSEA, "--style", STARRY, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["metrics"]) == {*metrics.METRIC_NAMES, "style_by_layer"}
    by_layer = data["metrics"]["style_by_layer"]
    assert list(by_layer) == list(metrics.EVAL_STYLE_LAYERS) and len(by_layer) == 16
    assert data["metrics"]["style_distance"] == pytest.approx(sum(by_layer.values()) / 16)
    assert data["metrics"]["ssim"] < 1


def test_score_cli_reads_the_inputs_from_a_restyle_png(tmp_path, capsys):
    out = tmp_path / "out.png"
    record = {"config": Config(size=64).to_dict(), "inputs": {"content": CHELSEA, "styles": [STARRY]}}
    files.save_png(images.load_image(CHELSEA), out, text={"restyle": json.dumps(record)})
    assert main(["score", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["content"] == CHELSEA and data["styles"] == [STARRY]
    assert data["metrics"]["content_distance"] == pytest.approx(0, abs=1e-6)


def test_score_cli_errors_are_one_line(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert main(["score", str(plain)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restyle: error:") and "--content" in err and "\n" not in err
    assert main(["score", str(tmp_path / "missing.png"), "--content", CHELSEA, "--style", STARRY]) == 2
    assert "not found" in capsys.readouterr().err
