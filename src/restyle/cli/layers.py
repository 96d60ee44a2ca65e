"""``restyle layers``: the layer names of each model and the named layer sets."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("layers", help="list the layer names of each model")
    p.set_defaults(handler=cmd_layers)


def cmd_layers(args: argparse.Namespace) -> int:
    from restyle.spec import ARCHS, GATYS_CONTENT, LAYER_SETS, layer_names

    print("Layer names (blockN_convM = conv output after ReLU; poolN = block N's pooling output).")
    for arch in ARCHS:
        print(f"\n{arch}:")
        names = layer_names(arch)
        blocks: dict[str, list[str]] = {}
        for n in names:
            blocks.setdefault(n[-1] if n.startswith("pool") else n[5], []).append(n)
        for ns in blocks.values():
            print("  " + "  ".join(ns))
    print(f"\ndefault content layer: {', '.join(GATYS_CONTENT)}")
    print("style layer sets:")
    for name, layers in LAYER_SETS.items():
        print(f"  {name:11s} {','.join(layers)}")
    return 0


