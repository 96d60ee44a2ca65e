"""Architecture facts, torch-free: the VGG configs, layer names and their canonical forms, conv
shapes, the named layer sets and the run presets.

Everything here is plain data, so the CLI's ``--help``, the config's validation and the
weights loaders can use it without importing torch or the network.

Layer names are Keras': ``blockN_convM`` is that convolution's output *after* its ReLU (in
Keras the activation is part of the conv layer); ``poolN`` (or Keras' ``blockN_pool``) is block
N's pooling output.
"""

from __future__ import annotations

import re
from typing import Any

from restyle.errors import ConfigError

#: Channels per conv, one list per block (as torchvision's ``cfgs``, grouped by block).
CONFIGS: dict[str, list[list[int]]] = {
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}
ARCHS = tuple(CONFIGS)


def arch_config(arch: str) -> list[list[int]]:
    """The channel lists of ``arch``, or a one-line error naming the valid models."""
    try:
        return CONFIGS[arch]
    except KeyError:
        raise ConfigError(f"unknown model '{arch}'; choose one of: {', '.join(ARCHS)}") from None


def layer_names(arch: str) -> list[str]:
    """All addressable layers of ``arch`` in network order (convs after ReLU, then the pool)."""
    names: list[str] = []
    for b, block in enumerate(arch_config(arch), start=1):
        names += [f"block{b}_conv{c}" for c in range(1, len(block) + 1)]
        names.append(f"pool{b}")
    return names


def layer_block(name: str) -> int:
    """The block a canonical layer name belongs to: 4 for ``block4_conv1`` and for ``pool4``."""
    m = re.fullmatch(r"block(\d+)_conv\d+|pool(\d+)", name)
    if m is None:
        raise ValueError(f"not a canonical layer name: {name!r}")
    return int(m.group(1) or m.group(2))


def conv_names(arch: str) -> list[str]:
    return [n for n in layer_names(arch) if "_conv" in n]


def canonical_layer(arch: str, name: str) -> str:
    """Map a user-written layer name to its canonical form, or raise listing the valid ones."""
    name = name.strip()
    m = re.fullmatch(r"block(\d)_pool", name)
    if m:
        name = f"pool{m.group(1)}"
    valid = layer_names(arch)
    if name not in valid:
        raise ConfigError(f"unknown layer '{name}' for {arch.upper()}; valid layers: {', '.join(valid)}")
    return name


def _conv_shapes(arch: str) -> dict[str, tuple[int, int, int, int]]:
    shapes: dict[str, tuple[int, int, int, int]] = {}
    in_ch = 3
    for b, block in enumerate(CONFIGS[arch], start=1):
        for c, out_ch in enumerate(block, start=1):
            shapes[f"block{b}_conv{c}"] = (out_ch, in_ch, 3, 3)
            in_ch = out_ch
    return shapes


CONV_SHAPES: dict[str, dict[str, tuple[int, int, int, int]]] = {a: _conv_shapes(a) for a in ARCHS}
"""Expected weight shape ``(out, in, 3, 3)`` of every conv, per architecture, in network order."""

CONV_NAMES: dict[str, list[str]] = {a: list(shapes) for a, shapes in CONV_SHAPES.items()}
"""Keras conv names in network order: ``block1_conv1, block1_conv2, block2_conv1, ...``
(13 for vgg16, whose blocks 3-5 have 3 convs; 16 for vgg19, whose blocks 3-5 have 4)."""

#: Input conventions of ImageNet weights: Caffe (BGR, 0-255, mean-subtracted) and torchvision
#: (RGB, 0-1, normalised by mean and std).
CAFFE, TORCH = "caffe", "torch"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
TORCH_RGB_STD = (0.229, 0.224, 0.225)

#: Coarse-to-fine (``--multiscale``, on by default) halves the output size down to at least this
#: many pixels, so sizes under twice it run one stage (docs/quality.md).
MULTISCALE_MIN = 256

#: The default pixel cap (width x height) for input images: the size at which Pillow itself
#: refuses an image as a decompression bomb (twice ``Image.MAX_IMAGE_PIXELS``' default). The
#: config's ``max_pixels`` default, the image loader's and ``--max-pixels``' help all use this one.
DEFAULT_MAX_PIXELS = 178_956_970

# ---- layer sets and presets -----------------------------------------------------------------

GATYS_CONTENT = ["block4_conv2"]
GATYS_STYLE = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]

#: Named style-layer sets: the Gatys 2016 paper's and the three of the seed notebook's table.
LAYER_SETS: dict[str, list[str]] = {
    "gatys": GATYS_STYLE,
    "seed": ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"],
    "seed-conv1": ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"],
    "seed-mixed": ["block1_conv1", "block2_conv1", "block3_conv2", "block4_conv2", "block5_conv2"],
}

#: Presets: option overrides applied before the user's own options.
PRESETS: dict[str, dict[str, Any]] = {
    "gatys": {"model": "vgg19", "content_layers": GATYS_CONTENT, "style_layers": LAYER_SETS["gatys"]},
    "seed": {"model": "vgg16", "content_layers": ["block2_conv2"], "style_layers": LAYER_SETS["seed"]},
    "seed-conv1": {"model": "vgg16", "content_layers": ["block2_conv2"], "style_layers": LAYER_SETS["seed-conv1"]},
    "seed-mixed": {"model": "vgg16", "content_layers": ["block2_conv2"], "style_layers": LAYER_SETS["seed-mixed"]},
}


#: The shortest side an image may have (a 1-pixel side has no neighbours for the losses).
MIN_SIDE = 2


def longest_size(image_size: tuple[int, int], size: int) -> tuple[int, int]:
    """The (width, height) an image of ``image_size`` = (width, height) has when scaled so its longest
    side is ``size`` (each side at least ``MIN_SIDE``)."""
    width, height = image_size
    scale = size / max(width, height)
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))
