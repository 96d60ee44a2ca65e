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
                    "restyle output. See docs/metrics.md.")
    p.add_argument("output", metavar="OUTPUT", help="the stylised image")
    p.add_argument("--content", "-c", help="content image (default: the one recorded in OUTPUT)")
    p.add_argument("--style", "-s", nargs="+", help="style image(s) (default: those recorded in OUTPUT)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from restyle.api import describe_evaluator as describe
    from restyle.api import format_scores as format_table
    from restyle.api import read_run_record, score

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


