"""A large print on a GPU within a memory budget: the time by stage and torch's CUDA peaks.

    python bench/gpu_print.py --size 8192 --max-memory 16 --out /tmp/print   # docs/large.md's GPU row

Runs ``restyle.api.stylize`` with the defaults (coarse to fine, L-BFGS, bf16 where the GPU has it)
and ``--max-memory``, so the stages that need it are tiled as ``restyle run`` would tile them.
Prints one JSON line: the size, wall time, seconds and losses by stage, the run's notes (the
tiling and L-BFGS history it chose) and ``torch.cuda.max_memory_allocated/reserved``. The process's
whole GPU footprint (the CUDA context included) is what ``nvidia-smi`` shows: sample it beside
the run (``nvidia-smi --query-gpu=memory.used --format=csv -lms 200``). Writes OUT.png (the
print, run record inside), OUT-whole.jpg (downscaled to 1600 px) and OUT-crop.jpg (1024 px at 100%).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--max-memory", type=float, default=16.0)
    ap.add_argument("-n", "--iterations", type=int, default=300)
    ap.add_argument("--content", default=str(EXAMPLES / "chelsea.jpg"))
    ap.add_argument("--style", default=str(EXAMPLES / "starry_night.jpg"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path("/tmp/print"))
    a = ap.parse_args()

    import torch

    from restyle import api

    start = time.perf_counter()
    result = api.stylize(a.content, [a.style], size=a.size, max_memory=a.max_memory, iterations=a.iterations,
                         device=a.device, output=a.out.with_suffix(".png"), plot=False)
    wall = time.perf_counter() - start
    cuda = torch.cuda.is_available() and a.device.startswith("cuda")
    stages: dict[int, dict] = {}
    for row in result.history:
        st = stages.setdefault(int(row["scale"]), {"first": row["total"], "rows": 0, "start_s": row["seconds"]})
        st.update(last=row["total"], rows=st["rows"] + 1, end_s=row["seconds"])
    print("RESULT " + json.dumps({
        "size": a.size, "shape": list(result.image.size), "max_memory_gb": a.max_memory, "wall_s": wall,
        "stages": stages, "notes": result.notes, "final_loss": result.final_loss,
        "device": torch.cuda.get_device_name() if cuda else a.device,
        "cuda_allocated_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "cuda_reserved_peak_gb": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
        "torch": torch.__version__}), flush=True)
    image = result.image
    whole = image.copy()
    whole.thumbnail((1600, 1600))
    whole.save(f"{a.out}-whole.jpg", quality=90)
    w, h = image.size
    left, top = int(w * 0.30), int(h * 0.25)  # chelsea's left eye, as in the CPU prints
    image.crop((left, top, left + 1024, top + 1024)).save(f"{a.out}-crop.jpg", quality=92)


if __name__ == "__main__":
    main()
