"""``restyle run``: stylise one photo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from restyle.cli.options import add_run_options, positive_int, run_options
from restyle.errors import ConfigError, notice

EPILOG_RUN = """\
examples:
  restyle run photo.jpg painting.jpg -o out.png --size 256
  restyle run photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 -o out.png
  restyle run photo.jpg painting.jpg --preset seed --fallback-vgg19 -o seed.png
  restyle run photo.jpg painting.jpg --style-layers block1_conv1:2,block3_conv1 -o out.png
  restyle run --from-image out.png -o again.png        # reproduce a run from its output
  restyle run photo.jpg painting.jpg -o out.jpg --quality 90
  restyle run photo.jpg painting.jpg -o out.png --time-limit 60      # the picture it has after a minute
  restyle run photo.jpg --fast-model starry_night -o out.png          # a bundled fast model, in milliseconds
  restyle run photo.jpg --fast-model paintings --blend 1,1,0 -o out.png

Loss history goes to OUT.losses.csv (and a plot to OUT.losses.png) beside the output.
Ctrl-C once the bar moves: finish now, writing the picture so far; Ctrl-C again: stop without writing.
Layer names: `restyle layers`. Presets: gatys (default), seed, seed-conv1, seed-mixed.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="stylise a photo with one or more style images",
        description="Stylise CONTENT with STYLE image(s); write the image (PNG, JPEG, WebP, 16-bit TIFF or BMP, "
                    "by the extension of -o) with the run's record embedded.",
        epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="CONTENT STYLE", help="content image, then one or more style images "
                   "(with --fast-model: the content image alone)")
    p.add_argument("-o", "--output", required=True, help="output image: .png, .jpg, .webp, .tif (16-bit) or .bmp")
    p.add_argument("--from-image", metavar="IMAGE",
                   help="reproduce the run recorded in a restyle output (options given here override)")
    add_run_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=positive_int, default=0, metavar="N",
                   help="also save OUT.iterNNNN.png every N iterations")
    g.add_argument("--no-history", action="store_true", help="do not write OUT.losses.csv / OUT.losses.png")
    g.add_argument("--quality", type=int, metavar="Q",
                   help="JPEG/WebP quality, 1-100 (default 95); the format follows -o's extension: "
                        ".png, .jpg/.jpeg, .webp, .tif/.tiff (16-bit), .bmp (record in OUT.json)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from restyle import api
    from restyle.config import Config

    options = run_options(args)
    if not args.from_image and args.images:  # an absurd size: refused before the run loads its networks
        header = api.header_size(args.images[0])
        if header is not None:
            Config.from_values(options, preset=args.preset).check_request(header)

    if args.from_image:
        record = api.read_run_record(args.from_image)
        saved = record["config"]
        if args.preset:
            raise ConfigError("--preset cannot be combined with --from-image (the saved config already fixes the layers)")
        config = Config.from_dict({**saved, **options})
        content = args.images[0] if args.images else record["inputs"]["content"]
        styles = args.images[1:] if len(args.images) > 1 else record["inputs"]["styles"]
        if content is None or (not styles and api.method_for(config).paintings == "required") or None in styles:
            raise ConfigError(f"'{args.from_image}' was made from in-memory images; give CONTENT and STYLE paths")
        for path in api.changed_inputs(record):
            notice(f"input '{path}' changed since the saved run; the result will differ")
    else:
        config = Config.from_values(options, preset=args.preset)  # a typed `none` is a value here
        check_images(api.method_for(config), len(args.images))
        content, styles = args.images[0], args.images[1:]
    bar = ProgressBar(quiet=args.quiet)
    finish = FinishOnInterrupt(bar)
    try:
        with finish:
            result = api.stylize(content, styles, config, output=args.output, on_event=finish,
                                 save_every=args.save_every, history=not args.no_history, plot=not args.no_history,
                                 quality=args.quality, keep=[args.from_image] if args.from_image else [])
    finally:
        bar.close()
    if not args.quiet:
        last = result.history[-1] if result.history else None
        if last:
            print(f"restyle: {len(result.history) - 1} iterations in {last['seconds']:.1f} s, "
                  f"final loss {last['total']:.4g}", file=sys.stderr)
        print("restyle: wrote " + ", ".join(str(p) for p in result.written.values()), file=sys.stderr)
    return 1 if result.stopped_early else 0


def check_images(method: Any, given: int) -> None:
    """Refuse a command line with the wrong number of images for the method, with a usage line."""
    if method.paintings == "none" and given != 1:
        raise ConfigError(f"with --method {method.name} give the content image alone (its styles come with its "
                          f"model): restyle run CONTENT --method {method.name} ... -o OUT.png")
    if method.paintings == "required" and given < 2:
        raise ConfigError("give a content image and at least one style image (restyle run CONTENT STYLE -o OUT.png)")
    if given < 1:
        raise ConfigError("give a content image (restyle run CONTENT [STYLE ...] -o OUT.png)")


class FinishOnInterrupt:
    """Ctrl-C once the run has shown its first progress: finish now, writing the image so far (the
    engine's ``FinishNow``; the record says "finished on request: Ctrl-C"). Ctrl-C again, or before
    the first progress, stops without writing anything (exit 130); once the run has finished, the
    outputs are written whole whatever the keyboard says. Wraps the event handler ``then``;
    as a context manager it installs its SIGINT handler in the main thread and restores the one before.
    (``--time-limit`` is the engine's own: :class:`~restyle.config.Config` ``time_limit``.)"""

    def __init__(self, then: Any):
        self.then, self.started, self.asked, self.writing = then, False, False, False
        self.previous: Any = None

    def __call__(self, event: Any) -> None:
        from restyle.api import Finished, FinishNow, Progress

        self.then(event)
        if isinstance(event, Progress):
            self.started = True
            if self.asked:
                raise FinishNow("Ctrl-C")
        elif isinstance(event, Finished):  # the outputs are being written: all of them, or (before) none
            self.writing = True

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self.writing:
            print("\nrestyle: writing the output; a moment", file=sys.stderr)
            return
        if not self.started or self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print("\nrestyle: finishing now with the image so far (Ctrl-C again to stop without writing it)",
              file=sys.stderr)

    def __enter__(self) -> FinishOnInterrupt:
        import signal
        import threading

        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


class ProgressBar:
    """A tqdm bar over a run's typed events. It appears at the first event (``Started``, once the
    inputs have loaded), so an input error is the only line the user sees, not an empty bar."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        from restyle.api import Progress, Started

        if self.quiet:
            return
        if isinstance(event, Started) and event.total > 0:  # a fast model's run has no iterations to show
            from tqdm import tqdm

            self.close()
            # the engine's estimate of the time left, not tqdm's from the pace (a finer stage's steps cost 4x)
            self.bar = tqdm(total=event.total, unit="it", dynamic_ncols=True, mininterval=0.25, file=sys.stderr,
                            desc=f"{event.model} {event.device.split(':')[0]} {event.precision}",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
        elif isinstance(event, Progress) and self.bar is not None:
            loss = event.losses
            if event.total != self.bar.total:  # the automatic stop's estimate of the rows in all
                self.bar.total = event.total
            eta = event.eta
            left = "" if eta is None else f"about {self.bar.format_interval(eta)} left, "
            self.bar.set_postfix_str(f"{left}loss {loss['total']:.4g} (c {loss['content']:.3g} s {loss['style']:.3g} "
                                     f"tv {loss['tv']:.3g})", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
