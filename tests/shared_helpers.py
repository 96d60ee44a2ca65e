"""Helpers the tests share, in a module with a unique name (``from conftest import`` finds
whichever conftest.py was imported first when several directories have one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "restyle" / "examples"


def example(name: str, longest: int, path: Path) -> Path:
    """The bundled example ``name`` scaled to ``longest`` pixels (longest side), saved at ``path``."""
    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB")
        img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        img.save(path, quality=95) if path.suffix == ".jpg" else img.save(path)
    return path


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """``restyle ARGV...`` in this process: (exit code, stdout, stderr)."""
    from restyle.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tiny_fast_model(path: Path, styles: int = 2, seed: int = 0) -> Path:
    """A fast-model file with a tiny random network (width 4, one block) holding ``styles``
    styles named style1, style2, ... (each a 16-px solid-colour image): loads and runs like a
    trained one, in milliseconds."""
    import torch
    from PIL import Image

    from restyle.methods.fastmodel import encode_png, save_model
    from restyle.nn.transformer import NetShape, TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet(NetShape(width=4, blocks=1, kernel=3, styles=styles))
    with torch.no_grad():  # styles that differ visibly
        for p in net.style_parameters():
            p.add_(torch.randn_like(p))
    colours = [(200, 40, 40), (40, 40, 200), (40, 160, 40), (200, 200, 40)]
    record = {"styles": [{"name": f"style{i + 1}", "sha256": "0" * 64,
                          "png": encode_png(Image.new("RGB", (16, 16), colours[i % 4]))} for i in range(styles)],
              "config": {}, "options": {}, "shape": net.shape.as_dict(), "steps": 0, "photos": 0}
    save_model(path, net, record)
    return path


def optimiser_steps(opt, x, loss_fn, n: int) -> list[float]:
    """``n`` steps of the optimiser ``opt`` of the tensor ``x`` on ``loss_fn(x)``; each step's loss."""
    losses = []

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        return loss

    for _ in range(n):
        losses.append(float(opt.step(closure).detach()))
    return losses
