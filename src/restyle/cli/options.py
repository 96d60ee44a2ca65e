"""Run options on the command line, shared by every command that runs style transfer."""

from __future__ import annotations

import argparse
from typing import Any


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs style transfer (run, study)."""
    from restyle.config import DEVICES, LAYER_SETS, OPTIMIZERS, PRECISIONS, PRESETS

    g = p.add_argument_group("image")
    g.add_argument("--size", type=positive_int, help="longest side of the output in pixels (default 512)")
    g.add_argument("--style-scale", type=float, help="style images are resized to size x this (default 1.0)")
    g.add_argument("--style-blend", type=_floats, metavar="W1,W2,..", help="one weight per style image (default equal)")
    g.add_argument("--max-pixels", type=positive_int, help="refuse input images with more pixels (default 178956970)")
    g.add_argument("--init", help="start from: content (default), noise, or an image file")
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=list(PRESETS), help="layers and model of a known setup (default gatys)")
    g.add_argument("--model", choices=["vgg19", "vgg16"], help="backbone (default vgg19)")
    g.add_argument("--weights", metavar="PATH|download|embedded",
                   help="ImageNet weights: a torchvision .pth or Keras .h5 file; 'download' fetches torchvision's "
                        "into the torch hub cache; default: embedded VGG19 (no download)")
    g.add_argument("--fallback-vgg19", action="store_true", default=None,
                   help="when VGG16 weights are unavailable, run the same layers on the embedded VGG19")
    g.add_argument("--pooling", choices=["max", "avg"], help="pooling layers (default max)")
    g = p.add_argument_group("losses")
    sets = ", ".join(LAYER_SETS)
    g.add_argument("--content-layers", metavar="L[:W],..", help="content layers (default block4_conv2)")
    g.add_argument("--style-layers", metavar="L[:W],..|SET",
                   help=f"style layers with optional weights, or a set name ({sets}); default gatys")
    g.add_argument("--content-weight", type=float, help="default 1")
    g.add_argument("--style-weight", type=float, help="default 50")
    g.add_argument("--tv-weight", type=float, help="total-variation weight (default 1)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--iterations", "-n", type=positive_int, help="optimiser iterations (default 300)")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), help="default lbfgs")
    g.add_argument("--lr", type=float, help="step size (default 1 for L-BFGS, 0.02 for Adam)")
    g.add_argument("--line-search", action="store_true", default=None, help="strong-Wolfe line search (L-BFGS)")
    g.add_argument("--seed", type=int, help="random seed (default 0): same seed, same image on CPU")
    g.add_argument("--device", metavar="|".join(DEVICES) + "|cuda:N", help="default auto (CUDA when present)")
    g.add_argument("--precision", choices=list(PRECISIONS),
                   help="auto (default): bf16 where the hardware has it natively, else fp32")
    _add_control_options(p)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got '{text}'") from None


def _add_control_options(p: argparse.ArgumentParser) -> None:
    """Artistic controls (docs/controls.md): colour, regions, photorealism, coarse-to-fine."""
    from restyle.config import COLOR_MODES, DEFAULT_PHOTO_WEIGHT

    g = p.add_argument_group("artistic controls (docs/controls.md)")
    g.add_argument("--preserve-color", choices=list(COLOR_MODES),
                   help="keep the content's colours: luminance (transfer on luminance, content chroma kept) or "
                        "histogram (style images recoloured to the content's colour mean and covariance first)")
    g.add_argument("--mask", dest="masks", action="append", metavar="MASK",
                   help="one per style image, in order: grayscale image, white = that style applies; pixels no mask "
                        "covers keep content only (a black mask: that style nowhere)")
    g.add_argument("--style-mask", dest="style_masks", action="append", metavar="MASK|none",
                   help="one per style image: the part of that style image its style comes from (none = all of it)")
    g.add_argument("--label-image", metavar="LABELS",
                   help="regions by colour: each non-black colour, in reading order, gets the next style image; "
                        "black regions keep content only")
    g.add_argument("--photo", dest="photo_weight", action="store_const", const=DEFAULT_PHOTO_WEIGHT,
                   help=f"photorealism: matting-Laplacian term of Luan et al. 2017 (weight {DEFAULT_PHOTO_WEIGHT:g})")
    g.add_argument("--photo-weight", dest="photo_weight", type=float, metavar="W",
                   help="weight of the photorealism term (0 = off, the default)")
    g.add_argument("--photo-filter", action="store_true", default=None,
                   help="guided-filter the output with the content photo as guide (removes leftover texture)")
    g.add_argument("--scales", type=_ints, metavar="S1,S2,..",
                   help="coarse-to-fine longest sides, e.g. 512,1024,2048 (the last is the output's; overrides "
                        "--size); --iterations applies to each")
    g.add_argument("--multiscale", action="store_true", default=None,
                   help="coarse-to-fine from --size, halving down to >= 256 px (e.g. 2048: 256,512,1024,2048)")


RUN_FIELDS = (
    "size", "style_scale", "style_blend", "max_pixels", "init", "model", "weights", "fallback_vgg19", "pooling",
    "content_layers", "style_layers", "content_weight", "style_weight", "tv_weight", "iterations", "optimizer",
    "lr", "line_search", "seed", "device", "precision",
    "preserve_color", "masks", "style_masks", "label_image", "photo_weight", "photo_filter", "scales", "multiscale",
)


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields the user gave on the command line (unset ones are None)."""
    return {k: getattr(args, k) for k in RUN_FIELDS if getattr(args, k, None) is not None}


