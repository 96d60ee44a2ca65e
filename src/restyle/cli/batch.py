"""``restyle batch``: stylise many images, here, in local processes or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from restyle.errors import ConfigError

EPILOG = """\
examples:
  restyle batch photos/ --styles starry.jpg scream.jpg -o out/ --size 512     # every photo in both styles
  restyle batch 'shots/**/*.jpg' --styles styles/ -o out/ --jobs 2           # globs, a folder of styles, 2 processes
  restyle batch --manifest jobs.csv -o out/                                   # a row per output, options per row
  restyle batch photos/ --styles a.jpg -o out/ --ray                          # on the Ray cluster ($RAY_ADDRESS)
  restyle batch photos/ --styles a.jpg -o out/ --ray ray://head:10001         # on a given cluster
  restyle batch photos/ --styles a.jpg -o out/ --format jpg --quality 90

Outputs are OUT_DIR/{content}__{style}.png, each with its run record and loss CSV; OUT_DIR/batch.csv
lists every output (input, style, status, seconds, final loss, error). Rerunning the same command
skips the outputs already made with the same options and input files, and runs the rest.
A manifest (.csv with a header, or .jsonl) has a row per output: content, styles (';'-separated),
optional output name, preset and any run option (size, style_weight, ...); its paths are relative
to its folder. Exit status: 0 all outputs made, 1 some failed, 2 bad usage.
"""


def add_parser(subparsers: Any) -> None:
    from restyle.cli.options import add_run_options

    p = subparsers.add_parser(
        "batch", help="stylise many images: folders, globs or a manifest, here or on a Ray cluster",
        description="Stylise each INPUT with each --styles image (or each --manifest row) into OUT_DIR, skipping "
                    "outputs an earlier run made; in this process, in local processes (--jobs) or on Ray (--ray).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="content images: files, folders (searched recursively "
                   "for image files) or globs")
    p.add_argument("--styles", nargs="+", default=[], metavar="STYLE", help="style images (files, folders or globs)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder (created; reused to resume)")
    p.add_argument("--manifest", metavar="FILE", help="a .csv or .jsonl file with a row per output (see below)")
    g = p.add_argument_group("outputs")
    g.add_argument("--format", default="png", metavar="EXT",
                   help="output format: png (default), jpg, webp, tif (16-bit) or bmp")
    g.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality, 1-100 (default 95)")
    g.add_argument("--force", action="store_true", help="run every output again, even those already made")
    g.add_argument("--dry-run", action="store_true", help="list the outputs and whether each would run; run nothing")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar (failures are still reported)")
    g = p.add_argument_group("where it runs")
    g.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="outputs at once in N local processes (default 1, or one per --devices)")
    g.add_argument("--devices", metavar="DEV,DEV", help="deal outputs round-robin over these devices, e.g. cuda:0,cuda:1")
    g.add_argument("--threads", type=int, metavar="T",
                   help="torch threads per process (default CPUs // jobs); with --ray, CPUs per task (default 1)")
    g.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run on a Ray cluster, one task per output: auto (default: $RAY_ADDRESS or the cluster "
                        "started here with `ray start --head`), HOST:PORT, ray://HOST:10001, or local (a private "
                        "one on this machine); needs restyle[ray]")
    g.add_argument("--ray-gpus", type=float, metavar="G",
                   help="GPUs per Ray task (default 1 when the cluster has GPUs, else 0)")
    add_run_options(p)
    p.set_defaults(handler=cmd_batch)


def ray_address(value: str | None, positionals: list[str]) -> str | None:
    """``--ray``'s address; a value that is an existing file or folder is an image that followed a
    bare ``--ray`` (``--ray photos/``), and goes back to the ``positionals``."""
    if value is None or value in ("auto", "local") or ":" in value or not Path(value).exists():
        return value
    positionals.insert(0, value)
    return "auto"


def cmd_batch(args: argparse.Namespace) -> int:
    from restyle import api
    from restyle.cli.options import run_options

    address = ray_address(args.ray, args.inputs)
    if args.ray_gpus is not None and address is None:
        raise ConfigError("--ray-gpus applies with --ray")
    if not args.inputs and not args.manifest:
        raise ConfigError("give INPUT images and --styles STYLE..., or --manifest FILE (restyle batch --help)")
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    jobs = args.jobs if args.jobs is not None else max(1, len(devices))
    items = api.plan_batch(args.inputs, args.styles, args.output, manifest=args.manifest, options=run_options(args),
                           preset=args.preset, format=args.format)
    if args.dry_run:
        summary = api.run_batch(items, args.output, force=args.force, quality=args.quality, dry_run=True)
        for r in summary.results:
            print(f"{r.status:8} {r.item.output}  <-  {r.item.content} × {' + '.join(r.item.styles)}")
        print(f"restyle: {summary.count('to run')} to run, {summary.count('skipped')} already made", file=sys.stderr)
        return 0
    bar = BatchBar(args.output, quiet=args.quiet)
    try:
        summary = api.run_batch(items, args.output, jobs=jobs, devices=devices, threads=args.threads, ray=address,
                                ray_gpus=args.ray_gpus, force=args.force, quality=args.quality, on_event=bar)
    except KeyboardInterrupt:
        bar.close()
        print(f"restyle: interrupted after {bar.done} output(s); {Path(args.output) / 'batch.csv'} marks the rest "
              "'not run'; run the same command again to finish", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if not args.quiet:
        print(f"restyle: {summary.count('ran')} ran, {summary.count('skipped')} skipped, {len(summary.failed)} failed "
              f"in {summary.seconds:.0f} s; summary in {summary.summary_csv}", file=sys.stderr)
    return 1 if summary.failed else 0


class BatchBar:
    """One tqdm bar over the outputs a batch runs (ETA included), fed by its events; each failure
    is a ``restyle: error: OUTPUT: message`` line above it, quiet or not."""

    def __init__(self, out_dir: str, quiet: bool = False):
        self.out_dir = out_dir
        self.quiet = quiet
        self.bar: Any = None
        self.done = 0
        self.failed = 0

    def __call__(self, event: Any) -> None:
        from restyle.api import BatchStarted, ItemFinished

        if isinstance(event, BatchStarted):
            if self.quiet:
                return
            if not event.to_run:
                print(f"restyle: all {event.total} output(s) in {self.out_dir} already made; nothing to run",
                      file=sys.stderr)
            else:
                from tqdm import tqdm

                print(f"restyle: {event.total} output(s) in {self.out_dir}: {event.skipped} already made, "
                      f"{event.to_run} to run on {event.ran_with}", file=sys.stderr)
                self.bar = tqdm(total=event.to_run, unit="img", dynamic_ncols=True, file=sys.stderr, desc="batch",
                                mininterval=0.5)
        elif isinstance(event, ItemFinished):
            self.done += 1
            r = event.result
            if r.status in ("failed", "stopped"):
                self.failed += 1
                self.write(f"restyle: {'error' if r.status == 'failed' else 'stopped early'}: {r.item.name}: {r.error}")
            if self.bar is not None:
                self.bar.set_postfix_str(f"{self.failed} failed" if self.failed else r.item.name, refresh=False)
                self.bar.update(1)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
