"""Time to a first picture on the page: ``restyle serve`` on 127.0.0.1, one job with the page's
defaults (512 px, stop when finished) posted as "Paint it" posts it, its server-sent events read
until the end. Reports the seconds from the POST to the job's start, to the first preview (the
universal method's, labelled, where its decoder is installed), to the
first preview after the start image (the first with the painting's marks in it), to each further
preview, and to the finished result, and the time left the page showed at 10-90% of the run
against the time that was left; keeps the previews (JPEG) and a strip of the ones shown at
about 2, 5, 10, 20 s and the end (``strip.png``).

    python bench/preview.py -o bench/out/preview                 # chelsea x The Starry Night, 512 px
    python bench/preview.py --size 256 --photo astronaut.jpg -o bench/out/preview256
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "restyle" / "examples"
MARKS = (2.0, 5.0, 10.0, 20.0)


def start_server(data: Path, threads: int) -> tuple[subprocess.Popen[str], str]:
    """``restyle serve`` on a free port of 127.0.0.1, and its URL once its worker is idle (ready)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RESTYLE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "restyle", "serve", "--port", "0", "--data", str(data),
                             "--device", "cpu", "--threads", str(threads), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    assert proc.stderr is not None
    url = None
    for line in proc.stderr:  # bounded: the server prints its address once it listens
        match = re.search(r"serving http://[^/\s]+:(\d+)/", line)
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            break
    if url is None:
        raise SystemExit(f"restyle serve exited ({proc.wait()})")
    for _ in range(600):  # at most 60 s for the worker
        workers = httpx.get(f"{url}/api/server", timeout=10).json()["workers"]
        if workers and all(w["state"] == "idle" for w in workers):
            return proc, url
        time.sleep(0.1)
    raise SystemExit("the worker did not get ready within 60 s")


def follow(url: str, photo: Path, painting: Path, options: dict[str, Any]) -> list[dict[str, Any]]:
    """POST the job and read its events to the end: each as ``{kind, t, ...data}``, t from the POST."""
    t0 = time.monotonic()
    files = [("content", (photo.name, photo.read_bytes(), "image/jpeg")),
             ("style", (painting.name, painting.read_bytes(), "image/jpeg"))]
    job = httpx.post(f"{url}/api/jobs", data={"options": json.dumps(options)}, files=files, timeout=60).json()
    seen: list[dict[str, Any]] = [{"kind": "posted", "t": time.monotonic() - t0}]
    with httpx.stream("GET", f"{url}/api/jobs/{job['id']}/events", timeout=httpx.Timeout(1800, connect=10)) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind is not None:
                seen.append({"kind": kind, "t": time.monotonic() - t0, **json.loads(line[6:])})
    return seen


def jpeg(preview: dict[str, Any]) -> bytes:
    """The JPEG bytes of a preview event (its image is a ``data:`` URL)."""
    return base64.b64decode(str(preview["image"]).split(",", 1)[1])


def strip(previews: list[dict[str, Any]], path: Path) -> None:
    """The previews on screen at the MARKS and at the end, side by side, each captioned."""
    chosen = [max((p for p in previews if float(p["t"]) <= m), key=lambda p: float(p["t"]), default=None) for m in MARKS]
    shown: list[dict[str, Any]] = [c for c in chosen if c is not None] + [previews[-1]]
    images = [Image.open(io.BytesIO(jpeg(p))).convert("RGB") for p in shown]
    h = 256
    images = [im.resize((round(im.width * h / im.height), h)) for im in images]
    sheet = Image.new("RGB", (sum(im.width for im in images) + 8 * (len(images) - 1), h + 20), "white")
    x = 0
    for im, p in zip(images, shown):
        sheet.paste(im, (x, 20))
        ImageDraw.Draw(sheet).text((x + 4, 4), f"{float(p['t']):.1f} s, iteration {p['iteration']}", fill="black")
        x += im.width + 8
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default="chelsea.jpg")
    ap.add_argument("--painting", default="starry_night.jpg")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="another job option KEY=JSON (repeatable)")
    ap.add_argument("-o", "--out", default=str(ROOT / "bench" / "out" / "preview"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"size": args.size}
    options.update({k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)})
    with tempfile.TemporaryDirectory() as data:
        t_start = time.monotonic()
        proc, url = start_server(Path(data), args.threads)
        ready = time.monotonic() - t_start
        try:
            seen = follow(url, EXAMPLES / args.photo, EXAMPLES / args.painting, options)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    previews = [e for e in seen if e["kind"] == "preview"]
    first = {k: next((float(e["t"]) for e in seen if e["kind"] == k), None) for k in ("started", "progress")}
    later = next((p for p in previews if int(p["iteration"]) > 0), None)  # (-1: the universal preview)
    end = seen[-1]
    # the time left the page showed (the engine's estimate), against the time that was left
    progress = [e for e in seen if e["kind"] == "progress" and e.get("eta") is not None]
    done_t = float(end["t"])
    estimates = []
    for share in (0.1, 0.25, 0.5, 0.75, 0.9):
        e = min(progress, key=lambda e: abs(float(e["t"]) - share * done_t), default=None)
        if e is not None:
            estimates.append({"t": round(float(e["t"]), 1), "iteration": e["iteration"], "total": e["total"],
                              "eta_shown": round(float(e["eta"]), 1), "actually_left": round(done_t - float(e["t"]), 1)})
    summary = {"photo": args.photo, "painting": args.painting, "options": options, "server_ready_s": round(ready, 2),
               "started_s": first["started"], "first_progress_s": first["progress"],
               "first_preview_s": float(previews[0]["t"]) if previews else None,
               "universal_preview_s": next((float(p["t"]) for p in previews if int(p["iteration"]) < 0), None),
               "first_label": previews[0].get("label") if previews else None,
               "first_painted_preview_s": float(later["t"]) if later else None,
               "first_painted_iteration": later["iteration"] if later else None,
               "previews": [[round(float(p["t"]), 2), p["iteration"]] for p in previews],
               "end": {"status": end.get("status"), "t": round(done_t, 2)}, "time_left": estimates}
    for i, p in enumerate(previews):
        (out / f"preview-{i:03d}.jpg").write_bytes(jpeg(p))
    if previews:
        strip(previews, out / "strip.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "previews"}, indent=1))
    print("previews (s, iteration):", summary["previews"][:12], "...")


if __name__ == "__main__":
    main()
