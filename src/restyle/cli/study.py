"""``restyle study``: run a grid of style transfers and write a report."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from restyle.errors import ConfigError, notice
from restyle.spec import LAYER_SETS
from restyle.study.grid import STUDY_PRESETS

# ---------------------------------------------------------------------------------------------
# CLI

EPILOG = """\
examples:
  restyle study --preset seed-table -o seedtable            # the seed's Table/Figure 1 on the bundled images
  restyle study photo.jpg --styles a.jpg b.jpg --layer-sets gatys seed "block1_conv1,block3_conv1:2" -o out
  restyle study photo.jpg --styles a.jpg --sweep style_weight=10,100,1000 --sweep pooling=max,avg -o out
  restyle study photo.jpg --styles a.jpg --sweep "content_layers=block4_conv2;block2_conv2" -o out
  restyle study ... --jobs 2                                 # two processes (CPU threads split between them)
  restyle study ... --devices cuda:0,cuda:1                  # cells round-robin over two GPUs
  restyle study ... --ray                                    # cells on the Ray cluster ($RAY_ADDRESS)

--sweep takes any run option (KEY=V1,V2,..; values parsed by the option's type, 'none' for unset;
split on ';' instead of ',' for list values). Rerunning into the same DIR skips finished cells.
"""


def add_parser(subparsers: Any) -> None:
    from restyle.cli.options import add_run_options

    p = subparsers.add_parser(
        "study", help="run a grid of style transfers and write a report (PNGs, contact sheet, metrics, HTML)",
        description="Run CONTENT × --styles × --layer-sets × each --sweep, score every output with the fixed "
                    "evaluator, and write DIR/index.html, contact_sheet.png, metrics.csv, curves/ and cells/.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("contents", nargs="*", metavar="CONTENT", help="content image(s)")
    p.add_argument("--styles", nargs="+", metavar="STYLE", help="style image(s); each is a row of the grid")
    p.add_argument("--layer-sets", nargs="+", metavar="SET|L1,L2",
                   help=f"style-layer sets to compare: names ({', '.join(LAYER_SETS)}) or layer lists")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="vary a run option over these values (repeatable; the grid is the product)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="study directory (created; reused to resume)")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="cells run in N processes (default 1, or one per --devices)")
    p.add_argument("--devices", metavar="DEV,DEV", help="round-robin cells over these devices, e.g. cuda:0,cuda:1")
    p.add_argument("--threads", type=int, metavar="T",
                   help="torch threads per process (default CPUs // jobs; on a machine shared with other jobs, "
                        "1 is often several times faster)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run the cells on a Ray cluster, one task per cell: auto (default: $RAY_ADDRESS or the cluster "
                        "started here with `ray start --head`), HOST:PORT, ray://HOST:10001, or local; needs restyle[ray]")
    p.add_argument("--force", action="store_true", help="rerun every cell, even finished ones")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-cell progress lines")
    add_run_options(p, preset_choices={name: preset.description for name, preset in STUDY_PRESETS.items()})
    p.set_defaults(handler=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    from restyle import api
    from restyle.cli.batch import ray_address
    from restyle.cli.options import run_options

    args.ray = ray_address(args.ray, args.contents)
    options = run_options(args)
    if args.preset in STUDY_PRESETS:
        cells = api.preset_grid(args.preset, options, contents=args.contents or None, styles=args.styles,
                            layer_sets=args.layer_sets, sweeps=args.sweep)
        title = f"restyle study: {args.preset}"
    else:
        if not args.contents or not args.styles:
            raise ConfigError("give CONTENT image(s) and --styles STYLE... (or --preset seed-table)")
        cells = api.build_grid(args.contents, args.styles, args.layer_sets, args.sweep, options, preset=args.preset)
        title = "restyle study"
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    jobs = args.jobs if args.jobs is not None else max(1, len(devices))
    if args.ray is not None and (devices or jobs > 1):
        raise ConfigError("--ray places the cells on the cluster: drop --jobs and --devices")
    say = (lambda s: None) if args.quiet else (lambda s: print(f"restyle: {s}", file=sys.stderr, flush=True))
    say(f"study of {len(cells)} cells into {args.output}")
    command = "restyle " + " ".join(_quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["study"] else ""
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(api.ray_executor(args.ray, threads=args.threads)) if args.ray else None
        summary = api.run_study(cells, args.output, jobs=jobs, devices=devices, threads=args.threads,
                                force=args.force, progress=say, title=title, command=command, executor=executor)
    ran = sum(r.status == "ran" for r in summary.results)
    say(f"{ran} ran, {len(cells) - ran - len(summary.failed)} skipped, {len(summary.failed)} failed "
        f"in {summary.seconds:.0f} s; open {summary.files['html']}")
    if summary.failed:
        notice(f"{len(summary.failed)} cell(s) failed; see {summary.files['html']}")
        return 1
    return 0


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
