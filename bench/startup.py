"""Where start-up goes: process start to the first iteration and the PNG, in marks.

    python bench/startup.py --device cuda --size 256            # one child process per repeat
    python bench/startup.py --device cpu --size 256 --repeats 3 --json out.json

Each repeat is a fresh Python process (so imports, CUDA context, weights and kernel selection are
all cold) that records the wall time of these marks, counted from just before the parent started
it (the interpreter's own start included):

- ``python``: the child's first statement (interpreter start);
- ``import torch``; ``import restyle`` (the package, lazily: the engine is imported by the next mark);
- ``device ready``: CUDA context created and a first kernel run (CPU: nothing to do);
- ``engine``: ``StyleTransfer(config)``: the backbone built, its weights read and moved;
- ``first row``: the run's first history row (inputs read, targets built, the first step taken;
  on CUDA the first convolutions also choose their kernels: cuDNN benchmark mode);
- ``run done``: one iteration's run returned (the final loss evaluated);
- ``png``: the image written with its run record (``restyle.io.record.save_result``, no CSV or plot);
- ``second run``: the same run again in the same process (warm: what the first paid once).

The ``restyle run … -n 1`` command's own time is ``bench/bench.py``'s start-up figure; this
splits it. Printed as a table; ``--json`` keeps the raw marks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"
MARKS = ("python", "import torch", "import restyle", "device ready", "engine", "first row", "run done", "png",
         "second run")


def child(t0: float, device: str, size: int, out: str) -> None:
    marks = {"python": time.time()}
    import torch

    marks["import torch"] = time.time()
    import restyle

    marks["import restyle"] = time.time()
    if device.startswith("cuda"):
        torch.zeros(1, device=device).add_(1)
        torch.cuda.synchronize()
    marks["device ready"] = time.time()
    st = restyle.StyleTransfer(restyle.Config(size=size, device=device, iterations=1, seed=0))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    marks["engine"] = time.time()

    def on_iteration(row, image):
        marks.setdefault("first row", time.time())

    content, style = EXAMPLES / "chelsea.jpg", EXAMPLES / "starry_night.jpg"
    result = st.run(content, [style], on_iteration=on_iteration)
    marks["run done"] = time.time()
    from restyle.io.record import save_result

    save_result(result, out, content, [style], history=False, plot=False)
    marks["png"] = time.time()
    st.run(content, [style])
    marks["second run"] = time.time()
    print(json.dumps({k: v - t0 for k, v in marks.items()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write the raw marks of every repeat here")
    p.add_argument("--child", type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        child(a.child, a.device, a.size, str(Path(tempfile.gettempdir()) / "restyle-startup.png"))
        return
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    runs = []
    for _ in range(a.repeats):
        t0 = time.time()
        proc = subprocess.run([sys.executable, __file__, "--child", repr(t0), "--device", a.device, "--size", str(a.size)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)})
        if proc.returncode != 0:
            sys.exit(f"startup.py: the child failed: {proc.stderr.strip().splitlines()[-1:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"Start-up on {a.device}, {a.size} px, 1 iteration; seconds from process start (median of {len(runs)}):\n")
    print("| mark | at (s) | since the mark before (s) |\n|---|---|---|")
    before = 0.0
    for m in MARKS:
        at = statistics.median(r[m] for r in runs)
        shown = at - before if m != "second run" else at - statistics.median(r["png"] for r in runs)
        print(f"| {m} | {at:.2f} | {shown:.2f} |")
        before = at
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
