"""Fast-model video: end-to-end speed and flicker of ``restyle video --fast-model`` at 256 px.

Makes a pan-and-zoom clip of a bundled photo (real camera motion, :mod:`restyle.video.demo`),
then for each ``--temporal-blend`` A (0 = independent frames) and each DIS preset runs
:func:`restyle.api.stylize_video` end to end (decode, network, flow and blend, PNG work frames,
H.264 encode) and scores the output with :func:`restyle.api.score_video` (the warping error,
Lai et al. 2018, and the per-frame metrics). ``drift`` is the mean absolute difference, in 0-255
levels, of each frame from the independent frame the network draws for it (what the blend costs:
ghosts and softening); ``tv`` falls as the blend softens the texture. Also times each flow preset's
pair of flows and masks alone, and each stage of the pipeline alone. Prints JSON, then a markdown table.

    python bench/fast/video.py [--model FILE] [--frames 48] [--size 256] [--blends 0,0.3,0.5,0.7,0.9] [--threads N]

Without ``--model`` it uses /work/fastdata/models/paintings.pt (or its checkpoint) when there,
else a random network of the bundled shape (NetShape(12, 4, 5, 3)): right for the speed, not for
how the flicker looks.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from restyle import api
from restyle.video import flow, source
from restyle.video.demo import pan_zoom_clip

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "restyle" / "examples"
TRAINED = [Path("/work/fastdata/models/paintings.pt"), Path("/work/fastdata/models/paintings.ckpt.pt")]


def random_model(path: Path) -> Path:
    """A model file holding an untrained network of the bundled models' shape."""
    import torch
    from PIL import Image

    from restyle.methods.fastmodel import encode_png, save_model
    from restyle.nn.transformer import NetShape, TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(NetShape(12, 4, 5, 3))
    styles = [{"name": f"style{i + 1}", "sha256": "0" * 64, "png": encode_png(Image.new("RGB", (16, 16)))}
              for i in range(3)]
    save_model(path, net, {"styles": styles, "config": {}, "options": {}, "shape": net.shape.as_dict()})
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    info = source.probe(path)
    return [np.asarray(img, dtype=np.float32) for _, img in source.read_frames(info, list(range(info.frames)))]


def flow_times(clip: Path, size: int, repeat: int = 10) -> dict[str, float]:
    """Milliseconds per frame of each DIS preset: both flows and the masks, plus the warp."""
    info = source.probe(clip)
    imgs = [np.asarray(img.resize((size, round(size * info.height / info.width))), dtype=np.float32) / 255
            for _, img in source.read_frames(info, [0, 1])]
    out = {}
    for preset in flow.PRESETS:
        estimator = flow.FlowEstimator(preset)
        flow.pair(estimator, imgs[0], imgs[1])
        t0 = time.perf_counter()
        for _ in range(repeat):
            flow.pair(estimator, imgs[0], imgs[1]).warp(imgs[0])
        out[preset] = round((time.perf_counter() - t0) / repeat * 1000, 2)
    return out


def stage_times(clip: Path, model: Path, size: int, work: Path) -> dict[str, float]:
    """Milliseconds per frame of each stage alone: decode (and resize), the network, flow and blend
    (default preset and blend), the work folder's PNG (written and synced), the H.264 encode."""
    from restyle.config import Config
    from restyle.io import files
    from restyle.methods import method_for
    from restyle.video import fastframes, sink
    from restyle.video.defaults import DEFAULT_FAST_FLOW_PRESET, DEFAULT_TEMPORAL_BLEND

    info = source.probe(clip)
    height = round(size * info.height / info.width)
    t0 = time.perf_counter()
    imgs = [img.resize((size, height)) for _, img in source.read_frames(info, list(range(info.frames)))]
    decode = time.perf_counter() - t0
    config = Config(fast_model=str(model), size=size, device="cpu")
    method = method_for(config)
    method.run(imgs[0], [], config)
    t0 = time.perf_counter()
    outs = [method.run(img, [], config).image for img in imgs]
    net = time.perf_counter() - t0
    estimator = flow.FlowEstimator(DEFAULT_FAST_FLOW_PRESET)
    arrays = [np.asarray(img, dtype=np.float32) / 255 for img in imgs]
    t0 = time.perf_counter()
    for k in range(1, len(arrays)):
        link = flow.pair(estimator, arrays[k - 1], arrays[k])
        fastframes.blend_frames(np.asarray(outs[k], dtype=np.float32) / 255,
                                np.asarray(outs[k - 1], dtype=np.float32) / 255, link, DEFAULT_TEMPORAL_BLEND)
    blend = time.perf_counter() - t0
    (work / "stages").mkdir(exist_ok=True)
    paths = [work / "stages" / f"frame_{k + 1:06d}.png" for k in range(len(outs))]
    t0 = time.perf_counter()
    for img, path in zip(outs, paths):
        files.save_png(img, path)
    save = time.perf_counter() - t0
    t0 = time.perf_counter()
    sink.write_video(paths, work / "stages.mp4", info.fps, {})
    encode = time.perf_counter() - t0
    n = len(imgs)
    return {"decode": round(1000 * decode / n, 2), "network": round(1000 * net / n, 2),
            "flow_and_blend": round(1000 * blend / (n - 1), 2), "png_work_frame": round(1000 * save / n, 2),
            "encode": round(1000 * encode / n, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--fps", type=int, default=24, help="the clip's frame rate (motion per frame falls as it rises)")
    ap.add_argument("--blends", default="0,0.3,0.5,0.7,0.9")
    ap.add_argument("--presets", default=",".join(flow.PRESETS), help="flow presets to run at --blend-for-presets")
    ap.add_argument("--blend-for-presets", type=float, default=None, help="default: restyle's default blend")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's; 1 on a "
                    "machine another job keeps busy, where more threads than free cores slow it ten times)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from restyle.video.defaults import DEFAULT_FAST_FLOW_PRESET, DEFAULT_TEMPORAL_BLEND

    work = Path(tempfile.mkdtemp(prefix="restyle-fast-video-"))
    model = args.model or next((p for p in TRAINED if p.is_file()), None) or random_model(work / "random.pt")
    clip = pan_zoom_clip(EXAMPLES / "shipwreck.jpg", work / "clip.mp4", frames=args.frames,
                         size=(args.size, round(args.size * 9 / 16)), fps=args.fps, tone=None)
    runs = [(float(a), DEFAULT_FAST_FLOW_PRESET) for a in args.blends.split(",")]
    at = DEFAULT_TEMPORAL_BLEND if args.blend_for_presets is None else args.blend_for_presets
    runs += [(at, p) for p in args.presets.split(",") if (at, p) not in runs]
    options = dict(fast_model=str(model), size=args.size, device=args.device)
    api.stylize_video(clip, output=work / "warm.mp4", frames="0:4", **options)  # model load, first-call costs
    rows, independent = [], None
    for blend, preset in runs:
        out = work / f"a{blend}-{preset}.mp4"
        t0 = time.perf_counter()
        result = api.stylize_video(clip, output=out, temporal_blend=blend, flow=preset, **options)
        seconds = time.perf_counter() - t0
        scores = api.score_video(out, clip)
        frames = frames_of(out)
        if blend == 0:
            independent = frames
        drift = (float(np.mean([np.abs(a - b).mean() for a, b in zip(frames, independent)]))
                 if independent is not None else None)
        rows.append({"temporal_blend": blend, "flow": preset, "frames": result.frames,
                     "fps_end_to_end": round(result.frames / seconds, 2),
                     "ms_per_frame_stylise": round(1000 * float(np.mean(result.frame_seconds)), 1),
                     "warping_error": round(scores.warping_error, 6),
                     "input_warping_error": round(scores.input_warping_error, 6),
                     "drift": None if drift is None else round(drift, 2), "tv": round(scores.metrics["tv"], 4)})
    import torch

    report = {"model": str(model), "torch_threads": torch.get_num_threads(), "clip": f"{args.frames} frames, {args.size} px, {args.fps} fps pan and zoom",
              "flow_ms_per_frame": flow_times(clip, args.size),
              "stages_ms_per_frame": stage_times(clip, model, args.size, work), "runs": rows}
    print(json.dumps(report, indent=1))
    base = next((r["warping_error"] for r in rows if r["temporal_blend"] == 0), None)
    print(f"\nmodel {model}; clip {report['clip']}; flow (pair + masks + warp), ms: {report['flow_ms_per_frame']}; "
          f"stages, ms per frame: {report['stages_ms_per_frame']}\n")
    print("| blend | flow | fps end to end | ms/frame | warping error | vs independent | drift | tv |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['warping_error'] / base:.2f}" if base else "-"
        print(f"| {r['temporal_blend']:g} | {r['flow']} | {r['fps_end_to_end']} | {r['ms_per_frame_stylise']} | "
              f"{r['warping_error']:.6f} | {ratio} | {r['drift']} | {r['tv']} |")


if __name__ == "__main__":
    main()
