"""Command line: a thin layer over the Python API.

    restyle run CONTENT STYLE [STYLE ...] -o OUT.png [options]
    restyle run --from-image OUT.png -o AGAIN.png
    restyle layers
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from restyle.errors import ConfigError, RestyleError

EPILOG_RUN = """\
examples:
  restyle run photo.jpg painting.jpg -o out.png --size 256
  restyle run photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 -o out.png
  restyle run photo.jpg painting.jpg --preset seed --fallback-vgg19 -o seed.png
  restyle run photo.jpg painting.jpg --style-layers block1_conv1:2,block3_conv1 -o out.png
  restyle run --from-image out.png -o again.png        # reproduce a run from its PNG

Loss history goes to OUT.losses.csv (and a plot to OUT.losses.png) beside the output.
Layer names: `restyle layers`. Presets: gatys (default), seed, seed-conv1, seed-mixed.
"""


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _positive_int(text: str) -> int:
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
    g.add_argument("--size", type=_positive_int, help="longest side of the output in pixels (default 512)")
    g.add_argument("--style-scale", type=float, help="style images are resized to size x this (default 1.0)")
    g.add_argument("--style-blend", type=_floats, metavar="W1,W2,..", help="one weight per style image (default equal)")
    g.add_argument("--max-pixels", type=_positive_int, help="refuse input images with more pixels (default 178956970)")
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
    g.add_argument("--iterations", "-n", type=_positive_int, help="optimiser iterations (default 300)")
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


def build_parser() -> argparse.ArgumentParser:
    from restyle import __version__

    parser = argparse.ArgumentParser(
        prog="restyle", description="Neural style transfer (Gatys et al. 2016), offline, on CPU and GPU.")
    parser.add_argument("--version", action="version", version=f"restyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="stylise a photo with one or more style images",
                       description="Stylise CONTENT with STYLE image(s); write a PNG with the run's config embedded.",
                       epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="CONTENT STYLE", help="content image, then one or more style images")
    p.add_argument("-o", "--output", required=True, help="output PNG path")
    p.add_argument("--from-image", metavar="PNG", help="reproduce the run saved in a restyle PNG (options given here override)")
    add_run_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=_positive_int, default=0, metavar="N", help="also save OUT.iterNNNN.png every N iterations")
    g.add_argument("--no-history", action="store_true", help="do not write OUT.losses.csv / OUT.losses.png")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("layers", help="list the layer names of each model")
    p.set_defaults(handler=cmd_layers)

    for module in EXTRA_COMMANDS:
        module().add_parser(sub)
    return parser


#: Modules adding subcommands: each exposes ``add_parser(subparsers)``, and must not import torch
#: at module level (``restyle --help`` builds every parser); loaded when the parser is built.
EXTRA_COMMANDS: list[Callable[[], Any]] = []
EXTRA_COMMANDS.append(lambda: importlib.import_module("restyle.study"))
EXTRA_COMMANDS.append(lambda: sys.modules[__name__])  # score, below


def add_parser(subparsers) -> None:
    add_score_parser(subparsers)


def add_score_parser(subparsers) -> None:
    """``restyle score``: the metrics of restyle.metrics, imported only when the command runs."""
    p = subparsers.add_parser(
        "score", help="score an output image against its content and style (fixed evaluator)",
        description="Score OUTPUT with the fixed evaluator (embedded VGG19, fp32 on CPU; the output's JSON "
                    "names its settings). CONTENT and STYLE default to the inputs recorded in OUTPUT when it is a "
                    "restyle PNG. See docs/metrics.md.")
    p.add_argument("output", metavar="OUTPUT", help="the stylised image")
    p.add_argument("--content", "-c", help="content image (default: the one recorded in OUTPUT)")
    p.add_argument("--style", "-s", nargs="+", help="style image(s) (default: those recorded in OUTPUT)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from restyle.metrics import describe, format_table, score

    content, styles, blend = args.content, args.style, None
    if content is None or styles is None:
        from restyle.outputs import read_run_record

        try:
            record = read_run_record(args.output)
        except Exception as err:  # not a restyle PNG: say what to pass instead
            raise ConfigError(f"give --content and --style ({err})") from None
        content = content or record["inputs"].get("content")
        if styles is None:
            styles = record["inputs"].get("styles") or []
            blend = record["config"].get("style_blend")
        if content is None or not styles or None in styles:
            raise ConfigError(f"'{args.output}' was made from in-memory images; give --content and --style")
    values = score(args.output, content, list(styles), style_blend=blend).as_dict()
    if args.json:
        print(json.dumps({"output": str(args.output), "content": str(content), "styles": [str(s) for s in styles],
                          "metrics": values, "evaluator": describe()}, indent=2))
    else:
        print(f"output {args.output}\ncontent {content}\nstyle {', '.join(map(str, styles))}\n")
        print(format_table(values))
    sys.stdout.flush()
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from restyle.config import GATYS_CONTENT, LAYER_SETS
    from restyle.models import ARCHS, layer_names

    print("Layer names (blockN_convM = conv output after ReLU; poolN = block N's pooling output).")
    for arch in ARCHS:
        print(f"\n{arch}:")
        names = layer_names(arch)
        blocks: dict[str, list[str]] = {}
        for n in names:
            blocks.setdefault(n[-1] if n.startswith("pool") else n[5], []).append(n)
        for b, ns in blocks.items():
            print("  " + "  ".join(ns))
    print(f"\ndefault content layer: {', '.join(GATYS_CONTENT)}")
    print("style layer sets:")
    for name, layers in LAYER_SETS.items():
        print(f"  {name:11s} {','.join(layers)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from restyle import images
    from restyle.config import Config

    options = run_options(args)
    if args.from_image:
        from restyle.outputs import read_run_record

        record = read_run_record(args.from_image)
        saved = record["config"]
        if args.preset:
            raise ConfigError("--preset cannot be combined with --from-image (the saved config already fixes the layers)")
        config = Config.from_dict({**saved, **options})
        content = args.images[0] if args.images else record["inputs"]["content"]
        styles = args.images[1:] if len(args.images) > 1 else record["inputs"]["styles"]
        if content is None or not styles or None in styles:
            raise ConfigError(f"'{args.from_image}' was made from in-memory images; give CONTENT and STYLE paths")
        _check_digests(record)
    else:
        if len(args.images) < 2:
            raise ConfigError("give a content image and at least one style image (restyle run CONTENT STYLE -o OUT.png)")
        content, styles = args.images[0], args.images[1:]
        config = Config.from_options(preset=args.preset, **options)
    if config.style_blend is not None and len(config.style_blend) != len(styles):
        raise ConfigError(f"--style-blend has {len(config.style_blend)} weight(s) for {len(styles)} style image(s)")
    output = images.check_output_path(args.output)
    return _run(config, content, styles, output, args)


def _check_digests(record: dict[str, Any]) -> None:
    from restyle.errors import notice
    from restyle.outputs import file_digest

    for path, digest in record["inputs"].get("sha256", {}).items():
        now = file_digest(path)
        if now is None:
            continue  # a missing input is reported by the loader with its own message
        if digest and now != digest:
            notice(f"input '{path}' changed since the saved run; the result will differ")


def _run(config: Any, content: Any, styles: Sequence[Any], output: Path, args: argparse.Namespace) -> int:
    from restyle import images
    from restyle.engine import StyleTransfer
    from restyle.outputs import save_result

    engine = StyleTransfer(config)
    bar = None
    stem = output.with_suffix("")

    def on_iteration(row: dict[str, float], image: Any) -> None:
        nonlocal bar
        if bar is None and not args.quiet:
            # Started on the first iteration, once the inputs have loaded: an input error is then
            # the only line the user sees, not an empty progress bar before it.
            from tqdm import tqdm

            steps = getattr(engine, "planned_steps", config.iterations + 1)  # all coarse-to-fine stages
            bar = tqdm(total=steps, unit="it", dynamic_ncols=True, mininterval=0.25, file=sys.stderr,
                       desc=f"{engine.config.model} {engine.device.type} {engine.precision}")
        if bar is not None:
            bar.set_postfix_str(f"loss {row['total']:.4g} (c {row['content']:.3g} s {row['style']:.3g} tv {row['tv']:.3g})",
                                refresh=False)
            bar.update(1)
        i = int(row["iteration"])
        last = getattr(engine, "planned_steps", config.iterations + 1) - 1
        if args.save_every and i and i % args.save_every == 0 and i < last:
            images.save_png(images.to_image(image.float().cpu()), f"{stem}.iter{i:04d}.png")

    try:
        result = engine.run(content, styles, on_iteration=on_iteration)
    finally:
        if bar is not None:
            bar.close()
    written = save_result(result, output, content, styles, history=not args.no_history, plot=not args.no_history)
    if not args.quiet:
        last = result.history[-1] if result.history else None
        if last:
            print(f"restyle: {len(result.history) - 1} iterations in {last['seconds']:.1f} s, final loss {last['total']:.4g}",
                  file=sys.stderr)
        print("restyle: wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return 1 if result.stopped_early else 0


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"restyle: note: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    log = logging.getLogger("restyle")
    saved = log.handlers[:], log.propagate
    log.handlers[:] = [handler]
    log.propagate = False
    try:
        return _main(argv)
    finally:  # called in-process (tests, scripts): leave logging as it was, not tied to this stderr
        log.handlers[:], log.propagate = saved


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except RestyleError as err:
        print(f"restyle: error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # e.g. `restyle layers | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("restyle: interrupted; no output written", file=sys.stderr)
        return 130
    except MemoryError:
        print("restyle: error: out of memory; try a smaller --size", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: one line unless the user asks for the traceback
        if type(err).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA), without importing torch here
            print("restyle: error: out of GPU memory; try a smaller --size, --precision bf16, or --device cpu",
                  file=sys.stderr)
            return 2
        if os.environ.get("RESTYLE_DEBUG"):
            raise
        print(f"restyle: internal error: {type(err).__name__}: {err} (set RESTYLE_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
