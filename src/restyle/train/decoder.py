"""Training the universal method's decoder: Adam on :class:`~restyle.nn.decoder.Decoder` so that it
reconstructs photographs from their VGG19 features (pixel loss plus feature loss at every block up
to the decoded layer; Li et al. 2017), over random crops of the photo corpus. No painting is
seen. A checkpoint is written every ``every`` steps; a run resumes from it and ends where an
unbroken run does (the crops' random stream is restored with it). The decoder file records the
recipe, the steps and the seconds spent.

``python -m restyle.train.decoder OUT.pt --photos DIR [--layer block4_conv1] [--steps N]``, then
``python -m restyle.train.decoder bundle universal.pt block4_conv1.pt block3_conv1.pt ...``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from restyle.backbone import bf16_cpu_ok, cached_backbone
from restyle.nn.decoder import CASCADE, Decoder, DecoderShape
from restyle.nn.vgg import VGGFeatures
from restyle.train.photos import load_photos

#: The blocks whose first ReLU the feature loss compares (up to the decoded layer).
LOSS_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")


@dataclass(frozen=True)
class DecoderRecipe:
    steps: int = 6000
    batch: int = 8
    crop: int = 128
    lr: float = 3e-4
    lr_decay: float = 2e-4  # lr / (1 + decay * step), as in Huang & Belongie's training
    pixel_weight: float = 1.0
    feature_weight: float = 1.0
    every: int = 100
    seed: int = 0


def save_decoder(path: Path, dec: Decoder, record: dict[str, Any]) -> None:
    """The decoder file: fp16 weights (half the bytes; the decoder runs in bf16/fp32 anyway),
    its shape and the training record. Written to a temporary name, then renamed."""
    state = {k: v.half() for k, v in dec.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": "restyle-decoder-1", "shape": dec.shape.as_dict(), "state": state, "record": record}, tmp)
    os.replace(tmp, path)


def save_decoders(out: Path, parts: list[Path]) -> dict[str, Any]:
    """One file of several levels' decoders (what the universal method loads), each with its record."""
    levels = [torch.load(p, map_location="cpu", weights_only=True) for p in parts]
    levels.sort(key=lambda d: -DecoderShape.from_dict(d["shape"]).downsamplings)
    record = {lv["shape"]["layer"]: lv["record"] for lv in levels}
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"format": "restyle-decoders-1", "levels": levels, "record": record}, tmp)
    os.replace(tmp, out)
    return record


def load_decoder(path: str | Path) -> tuple[Decoder, dict[str, Any]]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    dec = Decoder(DecoderShape.from_dict(data["shape"]))
    dec.load_state_dict({k: v.float() for k, v in data["state"].items()})
    return dec.eval().requires_grad_(False), data["record"]


def losses(enc: VGGFeatures, dec: Decoder, x: torch.Tensor, layers: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """(pixel loss, feature loss) of reconstructing ``x``, each normalised by its target's scale."""
    with torch.no_grad():
        target = enc(x, layers)
    y = dec(target[dec.shape.layer])
    got = enc(y, layers)
    pixel = F.mse_loss(y.float(), x.float())
    feature = sum(F.mse_loss(got[n].float(), target[n].float()) / target[n].float().pow(2).mean().clamp_min(1e-6)
                  for n in layers) / len(layers)
    assert isinstance(feature, torch.Tensor)
    return pixel, feature


def train_decoder(out: Path, photos: Path, recipe: DecoderRecipe, shape: DecoderShape, threads: int = 2,
                  log: Any = print) -> dict[str, Any]:
    torch.set_num_threads(threads)
    ckpt = out.with_name(out.stem + ".ckpt.pt")
    layers = tuple(n for n in LOSS_LAYERS if int(n[5]) <= int(shape.layer[5]))
    bf16 = bf16_cpu_ok()
    enc = cached_backbone("vgg19", None, "max", torch.device("cpu"), torch.bfloat16 if bf16 else torch.float32)
    torch.manual_seed(recipe.seed)
    dec = Decoder(shape).train()
    opt = torch.optim.Adam(dec.parameters(), lr=recipe.lr)
    rng = random.Random(recipe.seed)
    step, seconds, history = 0, 0.0, []
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        dec.load_state_dict(state["decoder"])
        opt.load_state_dict(state["optim"])
        rng.setstate(state["rng"])
        step, seconds, history = state["step"], state["seconds"], state["history"]
        log(f"resumed at step {step} ({seconds:.0f} s)")
    data = load_photos(photos, held_out=0, longest=512, max_pixels=None)
    log(f"{len(data.train)} photos; {shape}; {recipe}")
    while step < recipe.steps:
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = recipe.lr / (1 + recipe.lr_decay * step)
        x = data.crops(recipe.batch, recipe.crop, rng)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pixel, feature = losses(enc, dec, x, layers)
        loss = recipe.pixel_weight * pixel + recipe.feature_weight * feature
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        history.append((step, float(pixel.detach()), float(feature.detach())))
        if step % recipe.every == 0 or step == recipe.steps:
            recent = history[-recipe.every:]
            log(f"step {step} pixel {sum(h[1] for h in recent) / len(recent):.5f} "
                f"feature {sum(h[2] for h in recent) / len(recent):.4f} {seconds:.0f} s")
            record = {"recipe": asdict(recipe), "steps": step, "seconds": round(seconds, 1),
                      "photos": len(data.train), "layers": list(layers), "bf16": bf16,
                      "final_pixel": recent[-1][1], "final_feature": recent[-1][2]}
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save({"decoder": dec.state_dict(), "optim": opt.state_dict(), "rng": rng.getstate(),
                        "step": step, "seconds": seconds, "history": history}, tmp)
            os.replace(tmp, ckpt)
            save_decoder(out, dec, record)
    return {"steps": step, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bundle"]:  # bundle OUT.pt LEVEL.pt ...: the levels in one file
        print(json.dumps(save_decoders(Path(argv[1]), [Path(a) for a in argv[2:]]), indent=1))
        return
    p = argparse.ArgumentParser(description="train the universal method's decoder on photos (or: bundle OUT.pt "
                                "LEVEL.pt ... to put trained levels in one file)")
    p.add_argument("out", type=Path)
    p.add_argument("--photos", type=Path, required=True)
    p.add_argument("--steps", type=int, default=DecoderRecipe.steps)
    p.add_argument("--batch", type=int, default=DecoderRecipe.batch)
    p.add_argument("--crop", type=int, default=DecoderRecipe.crop)
    p.add_argument("--every", type=int, default=DecoderRecipe.every)
    p.add_argument("--lr", type=float, default=DecoderRecipe.lr)
    p.add_argument("--layer", default="block4_conv1", choices=list(CASCADE))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    shape = CASCADE[a.layer]
    recipe = DecoderRecipe(steps=a.steps, batch=a.batch, crop=a.crop, every=a.every, lr=a.lr)
    train_decoder(a.out, a.photos, recipe, shape, a.threads, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
