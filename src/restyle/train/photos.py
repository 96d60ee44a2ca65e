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
#: Folders with more photos than this are read from disk as they are sampled (COCO's 83k photos
#: at 768 px would need about 140 GB in memory); smaller ones are decoded once and kept.
IN_MEMORY = 512


@dataclass
class PhotoSet:
    """Photos for training (``train``) and for the sample sheets (``held``, never trained on)."""

    train: list[Image.Image | Path]  # decoded, or (large folders) read when sampled
    held: list[Image.Image]
    names: list[str]  # of the training photos, in order
    held_names: list[str]
    skipped: list[str]  # files that could not be read, with the reason
    longest: int = 768
    max_pixels: int | None = None

    def crops(self, batch: int, crop: int, rng: random.Random) -> torch.Tensor:
        """``batch x 3 x crop x crop``: each a random photo, scaled so its shorter side is between
        ``crop`` and the photo's own (at most 2x the crop), cropped at random, flipped half the time."""
        out: list[torch.Tensor] = []
        while len(out) < batch:
            img = self._image(rng.choice(self.train))
            if img is None:
                continue
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

    def _image(self, item: Image.Image | Path) -> Image.Image | None:
        if isinstance(item, Image.Image):
            return item
        try:
            img = images.load_image(item, max_pixels=self.max_pixels, role="photo")
        except (InputImageError, ConfigError, OSError) as err:
            self.skipped.append(f"{item}: {err}")
            return None
        return images.resize_longest(img, self.longest) if max(img.size) > self.longest else img


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
    skip = {Path(p).resolve() for p in exclude}
    files = [p for p in find_photos(folder) if p.resolve() not in skip]
    lazy = len(files) > IN_MEMORY
    loaded: list[tuple[str, Image.Image | Path]] = []
    skipped: list[str] = []
    for path in files:
        try:
            if lazy:  # the header only; a photo that fails to decode later is skipped when sampled
                with Image.open(path) as im:
                    im.size  # noqa: B018
                item: Image.Image | Path = path
            else:
                img = images.load_image(path, max_pixels=max_pixels, role="photo")
                item = images.resize_longest(img, longest) if max(img.size) > longest else img
        except (InputImageError, ConfigError, OSError) as err:
            skipped.append(f"{path}: {err}")
            continue
        loaded.append((str(path.relative_to(Path(folder).expanduser())), item))
    if not loaded:
        raise ConfigError(f"no readable photo under --photos '{folder}' ({len(files)} image file(s), "
                          f"{len(skipped)} unreadable)")
    random.Random(0).shuffle(loaded)
    held_out = min(held_out, len(loaded) - 1)
    held, train = loaded[:held_out], loaded[held_out:]
    photo_set = PhotoSet([i for _, i in train], [], [n for n, _ in train], [n for n, _ in held], skipped,
                         longest, max_pixels)
    photo_set.held = [img for img in (photo_set._image(i) for _, i in held) if img is not None]
    return photo_set
