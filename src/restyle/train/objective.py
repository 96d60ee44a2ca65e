"""The training objective: restyle's own losses (:mod:`restyle.nn.losses`, :mod:`restyle.nn.w2`)
over a batch, each output towards its own style.

For a batch of photos ``x`` and the network's outputs ``y`` (sample ``b`` in style ``s_b``):
``content_weight · Σ_l w_l ‖F_l(y_b) − F_l(x_b)‖² / ‖F_l(x_b)‖²`` (mean over b) plus
``style weight · Σ_l w_l L_l(y_b; s_b)`` (Gram or W2, as for an optimised run, mean over b) plus
``tv_weight · TV(y)``, with the layers, weights, ``--strength`` and ``--style-loss`` of the
config. Colour preservation ``luminance`` trains on luminance: photos, outputs and paintings as the
network sees them are grey (the run then keeps the photo's chroma).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from restyle.config import Config
from restyle.engine.objective import Features, weighted
from restyle.nn import controls
from restyle.nn.losses import EPS, StyleLoss, gram, tv_loss
from restyle.nn.w2 import W2StyleLoss, mean_cov


class TrainObjective(nn.Module):
    """``forward(x, y, style_index) -> (total, content, style, tv)`` for photos ``x`` and outputs
    ``y`` (``B x 3 x H x W``), ``style_index`` (``B``) naming each output's style."""

    def __init__(self, config: Config, features: Features, styles: Sequence[torch.Tensor]):
        super().__init__()
        self.config, self.features = config, features
        self.content_layers = dict(config.content_layers)
        self.style_layers = dict(config.style_layers)
        self.layers = list(dict.fromkeys(list(self.content_layers) + list(self.style_layers)))
        self.luminance = config.preserve_color == "luminance"
        self.terms: list[dict[str, nn.Module]] = []
        for style in styles:
            seen = self.view(style.to(features.device))
            with torch.no_grad():
                feats = features(seen, list(self.style_layers))
            if config.style_loss == "w2":
                self.terms.append({n: W2StyleLoss(*mean_cov(f)) for n, f in feats.items()})
            else:
                self.terms.append({n: StyleLoss(gram(f)) for n, f in feats.items()})

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """Images as the network sees them (grey in luminance mode)."""
        return controls.gray3(controls.luminance(x)) if self.luminance else x

    def forward(self, x: torch.Tensor, y: torch.Tensor, style_index: Sequence[int]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        with torch.no_grad():
            target = self.features(self.view(x), list(self.content_layers))
        feats = self.features(self.view(y), self.layers)
        batch = y.shape[0]
        content = weighted(self.content_layers, {n: self._content(feats[n], target[n]) for n in self.content_layers})
        per_layer = {}
        for n in self.style_layers:
            total = feats[n].new_zeros((), dtype=torch.float32)
            for b in range(batch):
                total = total + self.terms[style_index[b]][n](feats[n][b:b + 1])
            per_layer[n] = total / batch
        style = weighted(self.style_layers, per_layer)
        tv = tv_loss(y)
        loss = c.content_weight * content + c.effective_style_weight * style + c.tv_weight * tv
        return loss, content, style, tv

    @staticmethod
    def _content(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``‖F − P‖² / ‖P‖²`` (each sample relative to its own target)."""
        f, p = f.float(), p.float()
        err = (f - p).pow(2).flatten(1).sum(1)
        return (err / (p.pow(2).flatten(1).sum(1) + EPS)).mean()
