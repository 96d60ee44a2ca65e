"""``restyle score``: the fixed evaluator's metrics for an output."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from restyle.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    add_score_parser(subparsers)


def add_score_parser(subparsers: Any) -> None:
    """``restyle score``: the metrics of restyle.metrics, imported only when the command runs."""
    p = subparsers.add_parser(
        "score", help="score an output image against its content and style (fixed evaluator)",
        description="Score OUTPUT with the fixed evaluator (embedded VGG19, fp32 on CPU; the output's JSON "
                    "names its settings). CONTENT and STYLE default to the inputs recorded in OUTPUT when it is a "
                    "restyle output. See docs/metrics.md. With --video: the temporal warping error of a "
                    "stylised video and its per-frame metrics' means (docs/video.md).")
    p.add_argument("output", metavar="OUTPUT", nargs="?", help="the stylised image")
    p.add_argument("--video", metavar="VIDEO", help="score a stylised video (file, GIF or folder of frames) "
                   "instead: warping error against --content, the input video, and per-frame metrics' means")
    p.add_argument("--content", "-c", help="content image, or with --video the input video "
                   "(default: the one recorded in OUTPUT)")
    p.add_argument("--style", "-s", nargs="+", help="style image(s) (default: those recorded in OUTPUT)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from restyle.api import describe_evaluator as describe
    from restyle.api import format_scores as format_table
    from restyle.api import read_run_record, score

    if (args.video is None) == (args.output is None):
        raise ConfigError("give either an OUTPUT image or --video VIDEO")
    if args.video is not None:
        return score_video(args)
    content, styles, blend = args.content, args.style, None
    if content is None or styles is None:
        try:
            record = read_run_record(args.output)
        except Exception as err:  # not a restyle output: say what to pass instead
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


def score_video(args: argparse.Namespace) -> int:
    """``restyle score --video OUT --content INPUT``: warping errors, then the metrics' means."""
    import json

    from restyle.api import describe_evaluator, format_scores
    from restyle.api import score_video as score

    result = score(args.video, args.content, args.style)
    if args.json:
        print(json.dumps({"video": str(args.video), "content": result.content, "styles": result.styles,
                          "frames": result.frames, "warping_error": result.warping_error,
                          "input_warping_error": result.input_warping_error, "metrics": result.metrics,
                          "evaluator": describe_evaluator()}, indent=2))
    else:
        print(f"video {args.video}\ncontent {result.content}\nstyle {', '.join(result.styles) or '(none: style metrics left out)'}"
              f"\nframes {result.frames}\n")
        print(f"{'warping error':<20} {result.warping_error:>10.4g}  lower   mean over frame pairs of the squared "
              "difference to the previous frame warped by the input's flow, where it is reliable")
        print(f"{'  of the input':<20} {result.input_warping_error:>10.4g}  -       the same of the input frames "
              "(what the flow leaves unexplained)\n")
        print("means over frames:")
        print(format_scores(result.metrics))
    sys.stdout.flush()
    return 0
