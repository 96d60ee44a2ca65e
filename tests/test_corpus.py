"""The photo corpus manifest, the screening rule and the crop sampler (no network, no apt)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restyle.train import corpus


@pytest.fixture(scope="module")
def entries() -> list[corpus.Entry]:
    return corpus.load_manifest()


def test_every_kept_entry_names_its_package_licence_hash_and_split(entries: list[corpus.Entry]) -> None:
    kept = [e for e in entries if e.kept]
    assert len(kept) >= 50
    for e in kept:
        assert e.package and e.version and e.path and e.licence and e.file
        assert e.source in ("deb", "pypi")
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        assert e.split in corpus.SPLITS


def test_screened_out_entries_say_why(entries: list[corpus.Entry]) -> None:
    for e in entries:
        if not e.kept:
            assert e.reason and not e.split and not e.file


def test_no_stored_file_is_in_two_splits(entries: list[corpus.Entry]) -> None:
    kept = [e for e in entries if e.kept]
    assert len({e.file for e in kept}) == len(kept)
    assert len({e.sha256 for e in kept}) == len(kept)


def test_judge_images_from_scikit_learn_are_never_trained_on(entries: list[corpus.Entry]) -> None:
    sklearn = [e for e in entries if e.package == "scikit-learn"]
    assert {Path(e.path).name for e in sklearn} >= {"china.jpg", "flower.jpg"}
    assert all(e.split == "judge" for e in sklearn)
    assert not any(e.split == "judge" for e in entries if e.package != "scikit-learn")


def test_holdout_has_ten_photos(entries: list[corpus.Entry]) -> None:
    assert sum(e.split == "holdout" for e in entries) == 10


def _natural(size: int = 640, seed: int = 0) -> Image.Image:
    """Colour noise with a 1/f spectrum, like a photo's texture."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    amp = 1.0 / np.maximum(np.hypot(f[:, None], f[None, :]), 1.0 / size)
    chans = [np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((size, size)))).real for _ in range(3)]
    arr = np.stack([(c - c.min()) / (c.max() - c.min()) for c in chans], -1)
    return Image.fromarray((arr * 255).astype(np.uint8))


def test_photo_like_textures_are_kept() -> None:
    assert corpus.screen(_natural()) == (True, "")


def test_flat_graphics_are_screened_out() -> None:
    arr = np.zeros((600, 800, 3), np.uint8)
    arr[:, :400] = (200, 30, 40)
    arr[:, 400:] = (20, 60, 200)
    kept, reason = corpus.screen(Image.fromarray(arr))
    assert not kept and reason


def test_images_with_a_large_solid_region_are_screened_out() -> None:
    arr = np.asarray(_natural()).copy()
    arr[:, : arr.shape[1] * 3 // 5] = (250, 250, 250)
    kept, reason = corpus.screen(Image.fromarray(arr))
    assert not kept and "solid" in reason


def test_small_and_greyscale_images_are_screened_out() -> None:
    assert corpus.screen(_natural(256))[0] is False
    assert corpus.screen(_natural().convert("L").convert("RGB")) == (False, "greyscale")


def test_default_corpus_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RESTYLE_CORPUS", str(tmp_path))
    assert corpus.default_corpus_dir() == tmp_path
    monkeypatch.delenv("RESTYLE_CORPUS")
    assert corpus.default_corpus_dir().parts[-2:] == ("restyle", "corpus")


def test_photos_lists_the_stored_files_of_a_split(tmp_path: Path, entries: list[corpus.Entry]) -> None:
    hold = [e for e in entries if e.split == "holdout"][:2]
    for e in hold:
        (tmp_path / e.file).write_bytes(b"")
    (tmp_path / "corpus.json").write_text(json.dumps({"images": [e.__dict__ for e in entries]}))
    assert corpus.photos("holdout", tmp_path) == [tmp_path / e.file for e in hold]
    assert corpus.photos("train", tmp_path) == []
    with pytest.raises(ValueError):
        corpus.photos("test", tmp_path)


def test_random_crops_are_batches_in_unit_range_and_repeatable(tmp_path: Path) -> None:
    paths = []
    for i, (w, h) in enumerate([(900, 600), (300, 400)]):
        p = tmp_path / f"p{i}.jpg"
        _natural(max(w, h), seed=i).crop((0, 0, w, h)).save(p, quality=90)
        paths.append(p)
    a = next(corpus.random_crops(paths, 128, 4, random.Random(7)))
    b = next(corpus.random_crops(paths, 128, 4, random.Random(7)))
    assert a.shape == (4, 3, 128, 128) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    stream = corpus.random_crops(paths, 64, 2, random.Random(1))
    assert not torch.equal(next(stream), next(stream))
