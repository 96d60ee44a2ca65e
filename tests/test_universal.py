"""Specification of the universal method (``--method universal``): any painting in one pass. The
feature transforms give the photo's features the painting's statistics; the decoder's training
resumes where it stopped; the method runs through the command line, the Python API, batches and
videos, with its own options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restyle import api
from restyle.errors import RestyleError
from restyle.nn import wct
from restyle.nn.decoder import CASCADE, Decoder, DecoderShape
from restyle.train.decoder import DecoderRecipe, load_decoder, save_decoder, save_decoders, train_decoder

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "restyle" / "examples"
TINY = DecoderShape(widths=(16, 8, 8), convs=(1, 1, 2))


def features(seed: int, channels: int = 8, hw: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(channels, channels, generator=g)
    return (mix @ torch.randn(channels, hw * hw, generator=g)).reshape(1, channels, hw, hw).relu() * 5 + 1


def test_whitening_and_colouring_gives_the_content_the_paintings_mean_and_covariance():
    content, style = features(0), features(1, hw=32)
    out = wct.whiten_colour(content, wct.Moments(style))
    flat_out, flat_style = out[0].reshape(8, -1), style[0].reshape(8, -1)
    assert torch.allclose(flat_out.mean(1), flat_style.mean(1), atol=1e-3)
    assert torch.allclose(torch.cov(flat_out), torch.cov(flat_style), rtol=1e-3, atol=1e-2)


def test_adain_gives_each_channel_the_paintings_mean_and_deviation():
    content, style = features(2), features(3)
    out = wct.adain(content, wct.Moments(style))[0].reshape(8, -1)
    flat_style = style[0].reshape(8, -1)
    assert torch.allclose(out.mean(1), flat_style.mean(1), atol=1e-4)
    assert torch.allclose(out.std(1), flat_style.std(1), rtol=1e-4)


def test_strength_zero_keeps_the_photos_features_and_one_is_the_full_transfer():
    content, style = features(4), wct.Moments(features(5))
    assert torch.equal(wct.transfer(content, [style], [1.0], 0.0), content)
    assert torch.allclose(wct.transfer(content, [style], [1.0], 1.0), wct.whiten_colour(content, style))


def test_the_decoder_returns_an_image_of_the_photos_size():
    dec = Decoder(TINY).eval()
    with torch.no_grad():
        out = dec(torch.rand(1, 512, 5, 7))
    assert out.shape == (1, 3, 40, 56) and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.numeric
def test_a_resumed_decoder_training_ends_where_an_unbroken_one_does(tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        Image.open(EXAMPLES / name).convert("RGB").resize((96, 64)).save(photos / name)
    recipe = DecoderRecipe(steps=4, batch=1, crop=32, every=2)
    train_decoder(tmp_path / "whole.pt", photos, recipe, TINY, threads=1, log=lambda s: None)
    half = DecoderRecipe(steps=2, batch=1, crop=32, every=2)
    train_decoder(tmp_path / "parts.pt", photos, half, TINY, threads=1, log=lambda s: None)
    train_decoder(tmp_path / "parts.pt", photos, recipe, TINY, threads=1, log=lambda s: None)
    whole, record = load_decoder(tmp_path / "whole.pt")
    parts, _ = load_decoder(tmp_path / "parts.pt")
    for a, b in zip(whole.state_dict().values(), parts.state_dict().values()):
        assert torch.equal(a, b)
    assert record["steps"] == 4 and record["recipe"]["crop"] == 32 and record["seconds"] > 0


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained two-level cascade (block4_conv1, then block1_conv1) of tiny decoders: the
    method's plumbing, not its look, is under test here."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("decoder")
    save_decoder(folder / "fine.pt", Decoder(CASCADE["block1_conv1"]), {"steps": 0})
    save_decoder(folder / "coarse.pt", Decoder(TINY), {"steps": 0})
    save_decoders(folder / "tiny.pt", [folder / "fine.pt", folder / "coarse.pt"])
    return folder / "tiny.pt"


def test_the_command_line_runs_any_painting_through_the_universal_method(decoder: Path, tmp_path: Path):
    out = tmp_path / "out.png"
    r = subprocess.run([sys.executable, "-m", "restyle", "run", str(EXAMPLES / "chelsea.jpg"),
                        str(EXAMPLES / "woman-with-hat-matisse.jpg"), "--method", "universal", "--decoder",
                        str(decoder), "--size", "40", "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as img:
        assert max(img.size) == 40
    record = api.read_run_record(out)
    assert record["config"]["method"] == "universal" and str(decoder) in record["inputs"]["sha256"]


def test_the_api_blends_paintings_and_keeps_the_size_asked_for(decoder: Path):
    result = api.stylize(EXAMPLES / "coffee.jpg", [EXAMPLES / "starry_night.jpg", EXAMPLES / "the_scream.jpg"],
                         method="universal", method_options={"decoder": str(decoder), "transform": "adain"},
                         size=33, style_blend=[0.7, 0.3])
    assert max(result.image.size) == 33 and result.history == []
    assert "universal (adain, 2 level(s)" in result.notes[0]


def test_an_unknown_transform_is_one_line(decoder: Path):
    with pytest.raises(RestyleError, match="unknown --transform"):
        api.stylize(EXAMPLES / "coffee.jpg", [EXAMPLES / "starry_night.jpg"], method="universal",
                    method_options={"decoder": str(decoder), "transform": "nope"}, size=32)


def test_a_video_with_any_painting_is_one_pass_per_frame(decoder: Path, tmp_path: Path):
    frames = tmp_path / "clip"
    frames.mkdir()
    with Image.open(EXAMPLES / "chelsea.jpg") as img:
        small = img.convert("RGB")
    for i in range(3):
        small.crop((10 * i, 0, 10 * i + 240, 160)).resize((48, 32)).save(frames / f"f{i:03d}.png")
    result = api.stylize_video(frames, [EXAMPLES / "the_scream.jpg"], output=str(tmp_path / "out") + "/",
                               method="universal", method_options={"decoder": str(decoder)}, size=48, fps=8)
    assert result.frames == 3
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outs) == 3 and np.asarray(Image.open(outs[0])).shape == (32, 48, 3)
