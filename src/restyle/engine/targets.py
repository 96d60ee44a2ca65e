"""A stage's targets, computed once from its images: the content features, the (blended or
region-guided) style Grams and, in photo mode, the matting Laplacian — assembled into an
:class:`~restyle.engine.objective.Objective`.

The style term is the Gram loss (:class:`~restyle.nn.losses.StyleLoss`) or, with ``--style-loss
w2``, the Wasserstein-2 loss of feature means and covariances (:mod:`restyle.nn.w2`); its weight
is ``--style-weight`` or the one ``--strength`` maps to (:attr:`Config.effective_style_weight`).

Colour preservation changes what the network sees here: luminance only (luminance mode), or
the styles recoloured to the content's colour statistics (histogram mode). Spatial control:
``--mask``/``--label-image`` give each style image a region of the content, ``--style-mask``
the part of a style image its Grams come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from restyle.config import Config, check_style_blend
from restyle.engine.objective import Features, LayerTerms, Objective, Photorealism, TotalVariation
from restyle.engine.tiles import TiledFeatures
from restyle.errors import ConfigError
from restyle.io import images
from restyle.nn import controls, network
from restyle.nn.losses import ContentLoss, GuidedStyleLoss, StyleLoss, gram, masked_gram
from restyle.nn.network import Backbone, LayerInfo
from restyle.nn.w2 import W2StyleLoss, mean_cov


@dataclass
class StageTargets:
    """What a stage optimises towards, and the content image it starts from."""

    content_rgb: torch.Tensor  # the content image as given, on the run's device
    content: torch.Tensor  # the content as the network sees it (grey in luminance mode)
    objective: Objective


class MaskImages:
    """The mask and label images of a run, loaded once (every stage resizes them)."""

    def __init__(self) -> None:
        self._masks: dict[tuple[str, str], torch.Tensor] = {}
        self._labels: dict[str, tuple[list[torch.Tensor], list[tuple[int, int, int]]]] = {}

    def source(self, path: str, role: str, max_pixels: int | None) -> torch.Tensor:
        """The grey mask image at ``path`` (values in [0, 1], full size)."""
        if (path, role) not in self._masks:
            img = images.load_image(path, max_pixels=max_pixels, role=role)
            self._masks[(path, role)] = controls.image_to_mask(img)
        return self._masks[(path, role)]

    def labels(self, path: str, n_styles: int, max_pixels: int | None,
               on_load: Callable[[list[tuple[int, int, int]]], None]) -> list[torch.Tensor]:
        """One mask per style image from the label image's colours; ``on_load(colours)`` runs
        when the image is read (once per run)."""
        if path not in self._labels:
            img = images.load_image(path, max_pixels=max_pixels, role="label image")
            self._labels[path] = controls.label_masks(img, n_styles)
            on_load(self._labels[path][1])
        return self._labels[path][0]


def build_targets(config: Config, features: Features, masks: MaskImages, notes: list[str],
                  content_img: Any, style_imgs: Sequence[Any]) -> StageTargets:
    """The stage's objective for content and style images at the stage's size (PIL images or
    ``1 x 3 x H x W`` tensors). Notes for the user are appended to ``notes``."""
    c = config
    if not style_imgs:
        raise ConfigError("give at least one style image")
    blend = c.style_blend if c.style_blend is not None else [1.0] * len(style_imgs)
    check_style_blend(c.style_blend, len(style_imgs))
    content_rgb = as_tensor(content_img).to(features.device)
    content, styles = colour_view(content_rgb, [as_tensor(img).to(features.device) for img in style_imgs],
                                  c.preserve_color)
    with torch.no_grad():
        feats = features(content, list(c.content_layers))
    content_losses = {n: ContentLoss(feats[n]) for n in c.content_layers}
    regions = content_regions(c, masks, notes, tuple(content.shape[-2:]), len(styles), features.device)
    smasks = style_masks(c, masks, styles, features.device)
    if c.style_loss == "w2":
        if regions is not None or any(m is not None for m in smasks):
            raise ConfigError("--style-loss w2 does not take --mask, --label-image or --style-mask yet; "
                              "use --style-loss gram with them")
        style_losses: dict[str, nn.Module] = w2_terms(features, styles, list(c.style_layers), blend)
    else:
        grams = style_grams(features, styles, smasks, list(c.style_layers))
        style_losses = style_terms(grams, blend, regions, features.info)
    photo = None
    if c.photo_weight > 0:
        from restyle.nn.matting import MattingLoss  # scipy: imported only in photo mode

        photo = Photorealism(MattingLoss(content_rgb), c.photo_weight)
    objective = Objective(
        features,
        LayerTerms(content_losses, c.content_layers, c.content_weight),
        LayerTerms(style_losses, c.style_layers, c.effective_style_weight),
        TotalVariation(c.tv_weight),
        photo,
    )
    return StageTargets(content_rgb, content, objective)


def colour_view(content_rgb: torch.Tensor, styles: list[torch.Tensor],
                mode: str | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(content, styles) as the network sees them: luminance mode, the luminance alone (the
    styles' matched to the content's mean and spread); histogram mode, the styles recoloured
    to the content's colour statistics; otherwise as given."""
    if mode == "luminance":
        content_y = controls.luminance(content_rgb)
        grey = [controls.gray3(controls.match_luminance(controls.luminance(s), content_y)) for s in styles]
        return controls.gray3(content_y), grey
    if mode == "histogram":
        return content_rgb, [controls.match_color(s, content_rgb) for s in styles]
    return content_rgb, styles


def style_grams(features: Features, styles: Sequence[torch.Tensor], smasks: Sequence[torch.Tensor | None],
                layers: list[str]) -> dict[str, list[torch.Tensor]]:
    """Per style layer, each style image's Gram (guided by its style mask where it has one)."""
    targets: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    for style, smask in zip(styles, smasks):
        if isinstance(features, TiledFeatures):  # a tiled stage: each Gram summed tile by tile
            lmasks = None if smask is None else {n: controls.layer_mask(smask, features.info[n].stride)
                                                 for n in layers}
            for n, g in features.grams(style, layers, lmasks).items():
                targets[n].append(g)
            continue
        with torch.no_grad():
            feats = features(style, layers)
        for n in layers:
            if smask is None:
                targets[n].append(gram(feats[n]))
            else:
                targets[n].append(masked_gram(feats[n], controls.layer_mask(smask, features.info[n].stride)))
    return targets


def w2_terms(features: Features, styles: Sequence[torch.Tensor], layers: list[str],
             blend: Sequence[float]) -> dict[str, nn.Module]:
    """Per style layer, the Wasserstein-2 loss towards the blend of the styles' feature
    distributions (means and covariances; :mod:`restyle.nn.w2`)."""
    stats: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {n: [] for n in layers}
    for style in styles:
        if isinstance(features, TiledFeatures):  # a tiled stage: the moments summed tile by tile
            for n, moments in features.mean_covs(style, layers).items():
                stats[n].append(moments)
            continue
        with torch.no_grad():
            feats = features(style, layers)
        for n in layers:
            stats[n].append(mean_cov(feats[n]))
    # tr √(Σₛ^½ Σ Σₛ^½) by Newton–Schulz everywhere: eigh is faster on a CPU, but its gradient
    # (1/2√λ) is unstable on the near-zero eigenvalues of a deep layer's rank-deficient covariance.
    return {n: W2StyleLoss(*W2StyleLoss.blended_target(s, list(blend))) for n, s in stats.items()}


def style_terms(grams: Mapping[str, list[torch.Tensor]], blend: Sequence[float],
                regions: list[torch.Tensor] | None, info: Mapping[str, LayerInfo]) -> dict[str, nn.Module]:
    """Per style layer, the loss: one blended Gram target (no regions), or each style's Gram
    in its own region (styles whose region is empty are left out)."""
    if regions is None:
        return {n: StyleLoss(StyleLoss.blended_target(t, list(blend))) for n, t in grams.items()}
    used = [i for i, m in enumerate(regions) if float(m.sum()) > 0]
    return {
        n: GuidedStyleLoss([controls.layer_mask(regions[i], info[n].stride) for i in used],
                           [t[i] for i in used])
        for n, t in grams.items()
    }


def content_regions(config: Config, masks: MaskImages, notes: list[str], size: tuple[int, ...], n_styles: int,
                    device: torch.device) -> list[torch.Tensor] | None:
    """Per style image, the content-pixel mask (``size`` = H, W) where it applies (None: everywhere)."""
    c = config
    if c.masks is not None:
        if len(c.masks) != n_styles:
            raise ConfigError(f"{len(c.masks)} --mask image(s) for {n_styles} style image(s); give one per style image")
        sources = [masks.source(p, f"mask {i + 1}", c.max_pixels) for i, p in enumerate(c.masks)]
    elif c.label_image is not None:
        def note_regions(colours: list[tuple[int, int, int]]) -> None:
            regions = ", ".join(f"#{r:02x}{g:02x}{b:02x} -> style {i + 1}" for i, (r, g, b) in enumerate(colours))
            notes.append(f"label image regions: {regions}; black: no style")

        sources = masks.labels(c.label_image, n_styles, c.max_pixels, note_regions)
    else:
        return None
    h, w = size
    out = [controls.resize_mask(m, (h, w)).to(device) for m in sources]
    for i, m in enumerate(out):
        note = f"style image {i + 1}'s region is empty: that style is not used"
        if float(m.sum()) == 0 and note not in notes:
            notes.append(note)
    return out


def style_masks(config: Config, masks: MaskImages, styles: Sequence[torch.Tensor],
                device: torch.device) -> list[torch.Tensor | None]:
    """Per style image, the mask of the part its Grams come from (None: all of it)."""
    c = config
    if c.style_masks is None:
        return [None] * len(styles)
    if len(c.style_masks) != len(styles):
        raise ConfigError(f"{len(c.style_masks)} --style-mask value(s) for {len(styles)} style image(s); "
                          "give one per style image (none = the whole image)")
    out: list[torch.Tensor | None] = []
    for i, (path, style) in enumerate(zip(c.style_masks, styles)):
        if path.lower() == "none":
            out.append(None)
            continue
        h, w = style.shape[-2:]
        mask = controls.resize_mask(masks.source(path, f"style mask {i + 1}", c.max_pixels), (h, w))
        if float(mask.sum()) == 0:
            raise ConfigError(f"style mask {i + 1} ('{path}') is all black: it selects no part of style image {i + 1}")
        out.append(mask.to(device))
    return out


def as_tensor(img: Any) -> torch.Tensor:
    """A ``1 x 3 x H x W`` float tensor from a PIL image (or a tensor, passed through)."""
    if isinstance(img, torch.Tensor):
        return (img if img.ndim == 4 else img[None]).float()
    return images.to_tensor(img)


def check_image_sizes(backbone: Backbone, layers: Sequence[str], content_img: Any, style_imgs: Sequence[Any]) -> None:
    """Refuse (one line) a stage whose content or style image is too small for the layers: a side
    shorter than the deepest layer's stride has no feature position there."""
    deepest = network.deepest(backbone, layers)
    need = deepest.stride
    for what, img in [("content image", content_img), *(("style image", s) for s in style_imgs)]:
        if min(img.size) < need:
            raise ConfigError(f"the {what} is {img.size[0]}x{img.size[1]} px at this size: {deepest.name} has a "
                              f"stride of {need} px, so its shorter side needs at least {need} "
                              f"px; use a larger --size (or --scales, --style-scale)")
