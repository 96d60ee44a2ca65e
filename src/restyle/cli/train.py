"""``restyle train``: train a fast model (a feed-forward network) for one or more paintings."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from restyle.cli.options import add_run_options, positive_int, run_options

EPILOG = """\
examples:
  restyle train painting.jpg --photos photos/ -o painting.pt
  restyle train a.jpg b.jpg c.jpg --photos photos/ -o three.pt --steps 4000   # one network, three styles
  restyle train painting.jpg --photos photos/ -o painting.pt --resume         # continue from painting.ckpt.pt
  restyle run photo.jpg --fast-model painting.pt -o out.png

The model file carries its record (styles and their SHA-256, options, steps, photos). A checkpoint
(NAME.ckpt.pt) and a sheet of held-back photos (NAME.samples/stepNNNNN.png) are written every
--every steps. Recipe and measurements: docs/fast.md.
"""

#: Run options that mean nothing to training (the optimiser's, the output's, spatial controls, the
#: choice of method; the methods' own options are added below).
NOT_TRAINING = ("iterations", "stop_tolerance", "lr", "line_search", "safeguard", "ema", "init", "optimizer", "masks",
                "style_masks", "label_image", "photo_weight", "photo_filter", "scales", "multiscale", "tile",
                "max_memory", "style_blend", "preset", "fallback_vgg19", "lead_stage", "pyramid", "time_limit",
                "method")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a fast model for one or more paintings (then: restyle run --fast-model)",
        description="Train a feed-forward transformation network (Johnson et al. 2016; several styles in one "
                    "network by conditional instance normalisation) with restyle's own losses, on random crops of "
                    "the photos under --photos. --size is the crop's side (default 256) and --style-scale the "
                    "paintings' size relative to it (default 2).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("styles", nargs="+", metavar="STYLE", help="painting(s); several make one multi-style model")
    p.add_argument("--photos", metavar="DIR", help="default: the photo corpus (bash scripts/corpus.sh builds it) "
                   "less its held-out photos; else a folder of photos (searched recursively; "
                   "unreadable files are skipped and counted)")
    p.add_argument("-o", "--output", required=True, metavar="NAME.pt", help="the model file")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=positive_int, default=2000, help="Adam steps (default 2000)")
    t.add_argument("--batch", type=positive_int, default=4, help="crops per step (default 4)")
    t.add_argument("--learning-rate", dest="train_lr", type=float, default=1e-3, metavar="LR",
                   help="Adam's step size (default 0.001)")
    t.add_argument("--width", type=positive_int, default=12, help="channels of the first layer (default 12; "
                   "Johnson et al.: 32, about 8x the time per image)")
    t.add_argument("--blocks", type=positive_int, default=4, help="residual blocks (default 4; Johnson et al.: 5)")
    t.add_argument("--kernel", type=positive_int, default=5, help="kernel of the first and last layers "
                   "(default 5; Johnson et al.: 9)")
    t.add_argument("--every", type=positive_int, default=200, metavar="N",
                   help="checkpoint and sample sheet every N steps (default 200; 0: at the end only)")
    t.add_argument("--held-out", type=positive_int, default=4, metavar="K",
                   help="photos kept out of training for the sample sheets (default 4)")
    t.add_argument("--resume", action="store_true", help="continue from NAME.ckpt.pt (same styles and options)")
    t.add_argument("--init-from", metavar="MODEL.pt", help="start from this model's parameters (same shape and "
                   "paintings), e.g. to fine-tune it with another --style-weight or other photos")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    from restyle import api

    add_run_options(p, exclude=(*NOT_TRAINING, *api.owned_fields()), methods=False)
    p.set_defaults(handler=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from restyle import api

    bar = TrainBar(args.quiet)
    try:
        model = api.train_fast_model(
            args.styles, args.photos, args.output, width=args.width, blocks=args.blocks, kernel=args.kernel,
            steps=args.steps, batch=args.batch, lr=args.train_lr, every=args.every, held_out=args.held_out,
            resume=args.resume, init_from=args.init_from, on_event=bar, **run_options(args))
    except KeyboardInterrupt:
        bar.close()
        print("restyle: interrupted; the last checkpoint is kept: add --resume to continue", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if not args.quiet:
        r = model.record
        print(f"restyle: wrote {args.output}: {', '.join(model.style_names)}; {r.get('steps')} steps on "
              f"{r.get('photos')} photos in {r.get('seconds', 0):.0f} s, loss {r.get('loss')}", file=sys.stderr)
    return 0


class TrainBar:
    """A tqdm bar over the steps (ETA included) with the smoothed loss; notes for skipped photos
    and sample sheets."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        from restyle.api import TrainProgress, TrainSample, TrainStarted

        if isinstance(event, TrainStarted):
            if event.skipped:
                print(f"restyle: note: {event.skipped} unreadable file(s) under the photo folder skipped",
                      file=sys.stderr)
            if not self.quiet:
                from tqdm import tqdm

                print(f"restyle: training {', '.join(event.styles)} on {event.photos} photos "
                      f"({event.held_out} held out), {event.device} {event.precision}", file=sys.stderr)
                self.bar = tqdm(total=event.steps, initial=event.start, unit="step", dynamic_ncols=True,
                                mininterval=0.5, file=sys.stderr)
        elif isinstance(event, TrainProgress) and self.bar is not None:
            self.bar.set_postfix(loss=f"{event.losses['smoothed']:.3g}", refresh=False)
            self.bar.update(event.step - self.bar.n)
        elif isinstance(event, TrainSample) and self.bar is not None:
            self.bar.write(f"restyle: step {event.step}: checkpoint and samples {event.path}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
