"""The two seams the codebase offers for what comes next: a *method* (anything that turns content,
styles, a config and an event handler into a result) behind ``restyle.stylize``, batches, studies
and videos; and a *backbone* (a feature network described by its layers' stride, reach and
channels) behind the objective, tiling, the memory estimate and the too-small-image check.
Each is exercised here with a stand-in implementation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import restyle
from restyle import api
from restyle.config import Config
from restyle.engine import Result
from restyle.engine.budget import activation_values, estimate_bytes
from restyle.engine.events import Finished, Progress, Started
from restyle.engine.objective import Features, LayerTerms, Objective, TotalVariation
from restyle.engine.targets import check_image_sizes
from restyle.engine.tiled import TiledObjective
from restyle.engine.tiles import TiledFeatures
from restyle.errors import ConfigError
from restyle.io.images import load_image, to_image
from restyle.methods import MethodBase
from restyle.nn.losses import ContentLoss, StyleLoss, gram
from restyle.nn.network import Backbone, LayerInfo, chain_info, halo
from restyle.nn.vgg import VGGFeatures


# ---- the method seam ------------------------------------------------------------------------------
class Posterise(MethodBase):
    """A trivial method: the content image at the config's size, quantised to four levels."""

    name = "posterise"

    def __init__(self) -> None:
        self.runs = 0

    def run(self, content: Any, styles: Any, config: Config, *, on_event: Any = None, **_: Any) -> Result:
        self.runs += 1
        emit = on_event or (lambda event: None)
        img = load_image(content, role="content image")
        img.thumbnail((config.size, config.size))
        emit(Started(1, (max(img.size),), "none", "cpu", "fp32", ()))
        pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        pixels = (pixels * 3).round() / 3
        row = {"iteration": 0.0, "scale": float(max(img.size)), "total": 0.0, "content": 0.0, "style": 0.0,
               "tv": 0.0, "photo": 0.0, "seconds": 0.0}
        emit(Progress(0, 1, max(img.size), {k: 0.0 for k in ("total", "content", "style", "tv", "photo")}, 0.0,
                      pixels))
        emit(Finished(0, 0.0, 0.0, None))
        return Result(to_image(pixels), [row], config, pixels=pixels)


def test_a_stand_in_method_implements_the_protocol():
    assert isinstance(Posterise(), restyle.Method)
    assert isinstance(api.method_for(Config()), restyle.Method)


def test_stylize_runs_any_method_and_writes_its_output_with_the_run_record(tmp_path: Path, content, style):
    events: list[Any] = []
    method = Posterise()
    result = api.stylize(content, [style], size=64, output=tmp_path / "out.png",
                         method=method, on_event=events.append, plot=False)
    assert method.runs == 1
    assert [type(e) for e in events] == [Started, Progress, Finished]
    saved = Image.open(tmp_path / "out.png")
    assert max(saved.size) == 64 and np.array_equal(np.asarray(saved), np.asarray(result.image))
    assert set(np.unique(np.asarray(saved))) <= {0, 85, 170, 255}
    assert api.read_run_record(tmp_path / "out.png")["config"]["size"] == 64


def test_batches_reach_their_method_through_the_seam(tmp_path: Path, content, style, monkeypatch: pytest.MonkeyPatch):
    import restyle.methods

    method = Posterise()
    monkeypatch.setattr(restyle.methods, "method_for", lambda config: method)
    items = api.plan_batch([content], [style], tmp_path / "out",
                           options={"size": 32})
    summary = api.run_batch(items, tmp_path / "out")
    assert method.runs == 1 and not summary.failed
    out = np.asarray(Image.open(items[0].output))
    assert set(np.unique(out)) <= {0, 85, 170, 255}


# ---- the backbone seam ----------------------------------------------------------------------------
class TwoLayerNet(nn.Module):
    """A tiny backbone: a 3x3 conv (c1), a 2x2 average pool (p1), a 3x3 conv (c2)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1)
        with torch.no_grad():
            for conv in (self.c1, self.c2):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.3)
                assert conv.bias is not None
                conv.bias.zero_()
        self.requires_grad_(False)
        self._info = chain_info([("c1", 4, 1, 1), ("p1", 0, 1, 2), ("c2", 6, 1, 1)])

    @property
    def names(self) -> list[str]:
        return list(self._info)

    @property
    def info(self) -> dict[str, LayerInfo]:
        return self._info

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return image - 0.5

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        c1 = F.relu(self.c1(self.preprocess(image)))
        p1 = F.avg_pool2d(c1, 2, 2)
        out = {"c1": c1, "p1": p1, "c2": F.relu(self.c2(p1))}
        return {n: f for n, f in out.items() if n in wanted}


def test_layer_geometry_comes_from_the_network():
    net = TwoLayerNet()
    assert isinstance(net, Backbone)
    assert [(i.channels, i.stride, i.reach) for i in net.info.values()] == [(4, 1, 1), (4, 2, 2), (6, 2, 4)]
    assert halo(net, ["c2"]) == (4, 2)
    vgg = VGGFeatures("vgg19")
    assert isinstance(vgg, Backbone)
    assert vgg.info["block4_conv1"].stride == 8 and vgg.info["block4_conv1"].channels == 512


def test_the_too_small_check_asks_the_backbone_for_the_stride():
    net = TwoLayerNet()
    check_image_sizes(net, ["c2"], Image.new("RGB", (2, 2)), [Image.new("RGB", (5, 2))])
    with pytest.raises(ConfigError, match="style image is 5x1 px.*c2 has a stride of 2 px"):
        check_image_sizes(net, ["c2"], Image.new("RGB", (2, 2)), [Image.new("RGB", (5, 1))])


def _objective(net: TwoLayerNet, content: torch.Tensor, style: torch.Tensor) -> Objective:
    features = Features(net, torch.device("cpu"), "fp32")
    with torch.no_grad():
        target = features(content, ["c1"])["c1"]
        style_gram = gram(features(style, ["c2"])["c2"])
    return Objective(features, LayerTerms({"c1": ContentLoss(target)}, {"c1": 1.0}, 1.0),
                     LayerTerms({"c2": StyleLoss(style_gram)}, {"c2": 1.0}, 10.0), TotalVariation(1.0))


def test_a_two_layer_backbone_is_tiled_exactly():
    gen = torch.Generator().manual_seed(3)
    content, style = torch.rand(1, 3, 30, 22, generator=gen), torch.rand(1, 3, 16, 16, generator=gen)
    x = torch.rand(1, 3, 30, 22, generator=gen)
    net = TwoLayerNet()
    whole = _objective(net, content, style)
    tiled = TiledObjective.wrap(whole, tile=8)
    assert len(tiled.tiles(x)) == 12 and tiled.halo == 4

    def value_and_grad(objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = x.clone().requires_grad_(True)
        total = objective(leaf)[0]
        (g,) = torch.autograd.grad(total, leaf)
        return total.detach(), g

    (v0, g0), (v1, g1) = value_and_grad(whole), value_and_grad(tiled)
    assert torch.allclose(v1, v0, rtol=1e-5)
    assert torch.allclose(g1, g0, rtol=1e-4, atol=1e-7)
    grams = TiledFeatures(whole.features, 8).grams(style, ["c2"])
    assert torch.allclose(grams["c2"], gram(net(style, ["c2"])["c2"]), rtol=1e-5)


def test_the_memory_estimate_reads_the_backbones_layers():
    features = Features(TwoLayerNet(), torch.device("cpu"), "fp32")
    assert activation_values(features, ["c2"]) == {"c1": 4.0, "p1": 1.0, "c2": 1.5}
    config = Config(content_layers="block1_conv1", style_layers="block1_conv1")
    untiled = estimate_bytes(config, features, ["c2"], (512, 512))
    assert estimate_bytes(config, features, ["c2"], (512, 512), tile=64) < untiled
