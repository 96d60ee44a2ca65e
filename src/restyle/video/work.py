"""The work folder of a video run: the finished frames as PNG files, and the settings they were
made with. Running the same command again continues after the last finished frame; a change
of any setting (an option, the input, a style image, the restyle version) starts over."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from restyle.errors import OutputError, notice
from restyle.io import files

SETTINGS = "restyle-video.json"
_FRAME = re.compile(r"frame_(\d{6,})\.png")


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in chunks (videos can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_digest(path: Path, frame_files: list[Path]) -> str:
    """A video file's SHA-256, or for a folder of frames the SHA-256 of its frames' digests."""
    if not frame_files:
        return file_digest(path)
    h = hashlib.sha256()
    for f in frame_files:
        h.update(f"{f.name}:{file_digest(f)}\n".encode())
    return h.hexdigest()


class WorkFolder:
    """Finished frames ``frame_000001.png``... (1-based names) and ``restyle-video.json``."""

    def __init__(self, path: Path):
        self.path = path

    def frame_path(self, index: int) -> Path:
        """The file of frame ``index`` (0-based)."""
        return self.path / f"frame_{index + 1:06d}.png"

    def frame_files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if _FRAME.fullmatch(p.name))

    def open(self, settings: Mapping[str, Any]) -> None:
        """Create the folder, or keep its frames when they were made with ``settings`` (else delete them)."""
        saved = self.read_settings()
        ours = self.frame_files()
        if saved is None and ours:
            raise OutputError(f"'{self.path}' holds frame_*.png files restyle did not make there; "
                              "choose an empty or new folder")
        if saved is not None and saved != json.loads(json.dumps(settings)) and ours:
            changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            notice(f"the {len(ours)} finished frame(s) in '{self.path}' were made with other settings "
                   f"({', '.join(changed)}); starting over")
            for p in ours:
                p.unlink()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create the work folder '{self.path}': {err.strerror or err}") from None
        files.atomic_write_text(self.path / SETTINGS, json.dumps(settings, indent=1) + "\n")

    def read_settings(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / SETTINGS).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def finished(self, total: int) -> int:
        """How many frames, from the first, are finished (readable PNG files)."""
        for i in range(total):
            p = self.frame_path(i)
            if not p.is_file():
                return i
            try:
                with Image.open(p) as img:
                    img.verify()
            except (OSError, ValueError, SyntaxError):  # cut short by a crash: make it again
                return i
        return total

    def save(self, index: int, image: Image.Image) -> Path:
        return files.save_png(image, self.frame_path(index))

    def remove(self) -> None:
        """Delete the frames and the settings, and the folder when nothing else is left in it."""
        for p in self.frame_files():
            p.unlink(missing_ok=True)
        (self.path / SETTINGS).unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass
