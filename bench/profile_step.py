"""Where a step goes: ``torch.profiler`` over N steps of one stage, after a warm-up run.

    python bench/profile_step.py --device cuda --size 512 --steps 20 --out /tmp/prof
    python bench/profile_step.py --device cpu --size 256 --steps 8 --out /tmp/prof

One stage (no coarse to fine) of the bench's objective (astronaut x *The Starry Night*, square,
so the image is exactly ``size``² pixels), ``--precision auto``. A first run of the same length
warms the caches (weights on the device, cuDNN's kernel choice, the allocator); the second runs
under the profiler. Writes to ``--out``: ``ops.md`` (the operators by their own device time on
CUDA, CPU time on the CPU, with calls per step), ``trace.json`` (open in chrome://tracing or
Perfetto) and ``summary.json`` (ms a step of the profiled loop; on CUDA the device-to-host copies, i.e. host
reads, of the whole run, and the device events — kernels, copies — a step, the targets' included). The
profiler's own overhead is in those milliseconds: ``bench/bench.py`` gives the unprofiled ms a step
and the floor.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--precision", default="auto")
    p.add_argument("--rows", type=int, default=40, help="operators listed in ops.md")
    p.add_argument("--out", default="/tmp/restyle-profile")
    a = p.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from restyle import Config, StyleTransfer

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = a.device.startswith("cuda")
    cfg = Config(size=a.size, device=a.device, precision=a.precision, iterations=a.steps, seed=0, multiscale=False)
    st = StyleTransfer(cfg)
    content, style = EXAMPLES / "astronaut.jpg", EXAMPLES / "starry_night.jpg"
    st.run(content, [style])  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    before = st.loop_seconds
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        st.run(content, [style])
        if cuda:
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    loop_ms = 1000 * (st.loop_seconds - before) / a.steps  # the profiled run's loop (synced), a step
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = events.table(sort_by=sort, row_limit=a.rows, max_name_column_width=60)
    calls = {e.key: e.count for e in events}
    reads = sum(n for k, n in calls.items() if k.startswith("Memcpy DtoH")) if cuda else None
    kernels = None
    if cuda:
        kernels = sum(e.count for e in prof.events() if getattr(e, "device_type", None) is not None
                      and str(e.device_type).endswith("CUDA")) / a.steps
    summary = {
        "device": torch.cuda.get_device_name() if cuda else "cpu", "size": a.size, "steps": a.steps,
        "precision": st.precision, "run_seconds_profiled": wall, "loop_ms_per_step_profiled": loop_ms,
        "host_reads": reads, "cuda_events_per_step": kernels, "torch": torch.__version__,
    }
    (out / "ops.md").write_text(
        f"{a.steps} steps at {a.size}² on {summary['device']} ({st.precision}), sorted by {sort}; "
        f"the run (targets included) took {wall:.2f} s under the profiler.\n\n```\n{table}\n```\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    prof.export_chrome_trace(str(out / "trace.json"))
    print(table)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
