"""The training photos: every readable image under a folder (recursively), held in memory at a
bounded size, served as random crops, scales and flips."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from restyle.errors import ConfigError, InputImageError
from restyle.io import images

#: File endings read as photos (others are not looked at).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class PhotoSet:
    """Photos for training (``train``) and for the sample sheets (``held``, never trained on)."""

    train: list[Image.Image]
    held: list[Image.Image]
    names: list[str]  # of the training photos, in order
    held_names: list[str]
    skipped: list[str]  # files that could not be read, with the reason

    def crops(self, batch: int, crop: int, rng: random.Random) -> torch.Tensor:
        """``batch x 3 x crop x crop``: each a random photo, scaled so its shorter side is between
        ``crop`` and the photo's own (at most 2x the crop), cropped at random, flipped half the time."""
        out = []
        for _ in range(batch):
            img = rng.choice(self.train)
            short = min(img.size)
            side = rng.uniform(crop, max(crop, min(short, 2 * crop)))
            scale = side / short
            w, h = max(crop, round(img.width * scale)), max(crop, round(img.height * scale))
            x, y = rng.randint(0, w - crop), rng.randint(0, h - crop)
            # Crop in the photo's own pixels first, then resize only that box (cheap for big photos).
            box = (x / scale, y / scale, min(img.width, (x + crop) / scale), min(img.height, (y + crop) / scale))
            piece = img.resize((crop, crop), Image.Resampling.BICUBIC, box=box)
            if rng.random() < 0.5:
                piece = piece.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out.append(images.to_tensor(piece))
        return torch.cat(out)


def find_photos(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--photos '{folder}' is not a folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def load_photos(folder: str | Path, *, held_out: int, longest: int, max_pixels: int | None,
                exclude: Sequence[str | Path] = ()) -> PhotoSet:
    """Read every photo under ``folder`` (each resized to at most ``longest`` px), skipping and
    counting unreadable files; the first ``held_out`` (in a fixed shuffled order) are kept apart
    for sample sheets. No readable photo, or none left to train on, is a one-line error."""
    files = find_photos(folder)
    skip = {Path(p).resolve() for p in exclude}
    loaded: list[tuple[str, Image.Image]] = []
    skipped: list[str] = []
    for path in files:
        if path.resolve() in skip:
            continue
        try:
            img = images.load_image(path, max_pixels=max_pixels, role="photo")
        except (InputImageError, ConfigError, OSError) as err:
            skipped.append(f"{path}: {err}")
            continue
        if max(img.size) > longest:
            img = images.resize_longest(img, longest)
        loaded.append((str(path.relative_to(Path(folder).expanduser())), img))
    if not loaded:
        raise ConfigError(f"no readable photo under --photos '{folder}' ({len(files)} image file(s), "
                          f"{len(skipped)} unreadable)")
    random.Random(0).shuffle(loaded)
    held_out = min(held_out, len(loaded) - 1)
    held, train = loaded[:held_out], loaded[held_out:]
    return PhotoSet([i for _, i in train], [i for _, i in held], [n for n, _ in train], [n for n, _ in held],
                    skipped)
