"""Specification of restyle's outputs: the format follows the output's extension (PNG, JPEG,
WebP, 16-bit TIFF, BMP), each file carries its run record (inside it, or in ``OUT.json``
beside it) that ``--from-image`` reads back, and every write is atomic. That no output
overwrites an input is in ``test_no_overwrite.py``."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import restyle
from restyle.cli import main
from restyle.config import Config
from restyle.errors import ConfigError, InputImageError, OutputError
from restyle.io import formats
from restyle.io.files import read_png_text
from restyle.io.images import to_image
from restyle.io.record import read_run_record, save_result, side_paths

FAST = ["--size", "32", "-n", "2", "--precision", "fp32", "--device", "cpu", "-q"]
CPU = {"size": 32, "iterations": 2, "device": "cpu", "precision": "fp32"}
KNOWN = b"the user's own file, which restyle must leave alone\n"


@dataclass
class FakeRun:
    """What a finished run hands to the writers, without running anything."""

    pixels: Any  # 1x3xHxW float tensor in [0, 1], or None
    image: Any = None
    history: list[dict[str, float]] = field(default_factory=lambda: [
        {"iteration": 0, "scale": 8, "total": 2.0, "content": 0.0, "style": 1.5, "tv": 0.5, "photo": 0.0,
         "seconds": 0.0},
        {"iteration": 1, "scale": 8, "total": 1.0, "content": 0.2, "style": 0.6, "tv": 0.2, "photo": 0.0,
         "seconds": 0.1}])
    config: Config = field(default_factory=lambda: Config(size=32, iterations=1))
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.image is None:
            self.image = to_image(self.pixels)

    @property
    def final_loss(self) -> float:
        return self.history[-1]["total"]


def fake_run(height: int = 12, width: int = 20, seed: int = 0) -> FakeRun:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return FakeRun(pixels=torch.rand((1, 3, height, width), generator=gen))


def tiff_uint16(path: Path) -> np.ndarray:
    """The samples of an uncompressed 16-bit RGB TIFF, read from the strips Pillow's tag parser
    locates (Pillow itself decodes such files to 8 bits)."""
    with Image.open(path) as img:
        tags = img.tag_v2
        assert img.format == "TIFF" and tags[258] == (16, 16, 16) and tags[277] == 3 and tags[262] == 2
        assert tags[259] == 1 and tags.get(284, 1) == 1 and tags.get(339, (1, 1, 1)) == (1, 1, 1)
        width, height = img.size
        offsets, counts = tags[273], tags[279]
    data = path.read_bytes()
    raw = b"".join(data[o:o + n] for o, n in zip(offsets, counts))
    return np.frombuffer(raw, "<u2").reshape(height, width, 3)


def write(run: FakeRun, path: Path, **kwargs: Any) -> dict[str, Path]:
    return save_result(run, path, None, [None], **kwargs)


# ---- the format follows the extension --------------------------------------------------------


@pytest.mark.parametrize(("name", "pillow_format"), [
    ("out.png", "PNG"), ("out.jpg", "JPEG"), ("OUT.JPEG", "JPEG"), ("out.webp", "WEBP"), ("out.tif", "TIFF"),
    ("out.TIFF", "TIFF"), ("out.bmp", "BMP")])
def test_each_extension_writes_its_own_format_with_the_run_record(tmp_path, name, pillow_format):
    run = fake_run()
    written = write(run, tmp_path / name)
    with Image.open(written["image"]) as img:
        assert img.format == pillow_format and img.size == (20, 12)
        img.load()
    record = read_run_record(tmp_path / name)
    assert record["config"] == run.config.to_dict() and record["final_loss"] == 1.0
    assert "image" not in record
    expected = {"image", "csv", "plot"} | ({"record"} if pillow_format == "BMP" else set())
    assert set(written) == expected
    stem = name.rsplit(".", 1)[0]
    assert written["csv"].name == f"{stem}.losses.csv" and written["plot"].name == f"{stem}.losses.png"


def test_lossless_formats_keep_the_pixels(tmp_path):
    run = fake_run()
    for name in ("out.png", "out.bmp"):
        write(run, tmp_path / name, history=False, plot=False)
        with Image.open(tmp_path / name) as img:
            assert img.convert("RGB").tobytes() == run.image.tobytes()


def test_png_keeps_the_record_in_its_restyle_text_chunk(tmp_path):
    write(fake_run(), tmp_path / "out.png")
    assert json.loads(read_png_text(tmp_path / "out.png")["restyle"])["config"]["size"] == 32


def test_jpeg_and_webp_keep_the_record_in_exif_user_comment(tmp_path):
    for name in ("out.jpg", "out.webp"):
        write(fake_run(), tmp_path / name, history=False, plot=False)
        with Image.open(tmp_path / name) as img:
            comment = img.getexif().get_ifd(0x8769)[0x9286]
        assert comment.startswith(b"ASCII\0\0\0") and json.loads(comment[8:])["restyle"] == restyle.__version__
    assert sorted(os.listdir(tmp_path)) == ["out.jpg", "out.webp"]  # no sidecar


def test_tiff_is_16_bit_rgb_matching_the_float_output(tmp_path):
    run = fake_run(13, 9)
    run.pixels[0, :, 0, 0] = run.pixels.new_tensor([0.0, 1.0, 0.5])
    write(run, tmp_path / "out.tif", history=False, plot=False)
    samples = tiff_uint16(tmp_path / "out.tif")
    floats = run.pixels[0].permute(1, 2, 0).double().numpy()
    assert samples.dtype == np.uint16 and samples.shape == (13, 9, 3)
    assert np.abs(samples / 65535 - floats).max() <= 0.5 / 65535 + 1e-12  # within rounding of 1/65535
    assert samples[0, 0].tolist() == [0, 65535, 32768]
    with Image.open(tmp_path / "out.tif") as img:
        assert json.loads(img.tag_v2[270])["config"]["size"] == 32  # ImageDescription


def test_tiff_is_read_back_as_an_input(tmp_path):
    """Pillow decodes 16-bit RGB TIFF to 8 bits, so `restyle score out.tif` and using it as an
    input work."""
    run = fake_run()
    write(run, tmp_path / "out.tif", history=False, plot=False)
    from restyle.io.images import load_image

    loaded = np.asarray(load_image(tmp_path / "out.tif"), dtype=int)
    assert np.abs(loaded - np.asarray(run.image, dtype=int)).max() <= 1


def test_tiff_without_float_pixels_widens_the_8_bit_image(tmp_path):
    run = fake_run()
    run.pixels = None
    write(run, tmp_path / "out.tiff", history=False, plot=False)
    assert np.array_equal(tiff_uint16(tmp_path / "out.tiff"), np.asarray(run.image, np.uint16) * 257)


def test_quality_changes_the_jpeg_and_webp_size(tmp_path):
    run = fake_run(64, 64)
    sizes = {}
    for ext in ("jpg", "webp"):
        for quality in (30, 95):
            path = tmp_path / f"q{quality}.{ext}"
            write(run, path, quality=quality, history=False, plot=False)
            sizes[ext, quality] = path.stat().st_size
    assert sizes["jpg", 30] < sizes["jpg", 95] and sizes["webp", 30] < sizes["webp", 95]
    write(run, tmp_path / "default.jpg", history=False, plot=False)
    assert (tmp_path / "default.jpg").stat().st_size == sizes["jpg", 95]  # 95 is the default


@pytest.mark.parametrize(("name", "quality", "fragment"), [
    ("out.png", 90, "--quality applies to JPEG and WebP outputs"),
    ("out.tif", 90, "not to '.tif' files"),
    ("out.jpg", 0, "from 1 to 100, got 0"),
    ("out.webp", 101, "from 1 to 100, got 101"),
])
def test_bad_quality_is_refused(tmp_path, name, quality, fragment):
    with pytest.raises(ConfigError, match=fragment):
        write(fake_run(), tmp_path / name, quality=quality)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["out.gif", "out.txt", "out", "out.jpe"])
def test_unknown_extension_is_refused_with_the_supported_list(tmp_path, name):
    with pytest.raises(OutputError) as info:
        write(fake_run(), tmp_path / name)
    message = str(info.value)
    assert message.startswith(f"output '{tmp_path / name}' has ") and "\n" not in message
    assert message.endswith("use one of .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp")
    assert os.listdir(tmp_path) == []


def test_side_paths_drop_any_image_extension():
    assert side_paths("a/out.JPG") == {"csv": Path("a/out.losses.csv"), "plot": Path("a/out.losses.png"),
                                       "record": Path("a/out.json")}
    assert side_paths("out.tiff")["csv"] == Path("out.losses.csv")
    assert side_paths("my.photo.webp")["record"] == Path("my.photo.json")


# ---- the record where the format has no room: OUT.json ----------------------------------------


def test_bmp_record_lives_in_a_sidecar_naming_its_image(tmp_path):
    written = write(fake_run(), tmp_path / "out.bmp", history=False, plot=False)
    assert written["record"] == (tmp_path / "out.json").resolve()
    sidecar = json.loads((tmp_path / "out.json").read_text())
    assert sidecar["image"]["file"] == "out.bmp"
    assert sidecar["image"]["sha256"] == hashlib.sha256((tmp_path / "out.bmp").read_bytes()).hexdigest()
    assert read_run_record(tmp_path / "out.bmp")["config"]["size"] == 32


def test_a_sidecar_for_another_image_is_not_taken(tmp_path):
    write(fake_run(), tmp_path / "out.bmp", history=False, plot=False)
    Image.new("RGB", (4, 4)).save(tmp_path / "out.jpg")  # no record, and out.json is out.bmp's
    with pytest.raises(InputImageError, match="out.jpg' holds no restyle run config"):
        read_run_record(tmp_path / "out.jpg")


def test_a_changed_image_gets_a_notice_about_its_sidecar(tmp_path, caplog):
    write(fake_run(), tmp_path / "out.bmp", history=False, plot=False)
    Image.new("RGB", (4, 4)).save(tmp_path / "out.bmp")
    with caplog.at_level(logging.WARNING, logger="restyle"):
        assert read_run_record(tmp_path / "out.bmp")["config"]["size"] == 32
    assert any("has changed since its run record" in r.getMessage() for r in caplog.records)


def test_jpeg_record_too_large_for_exif_goes_to_the_sidecar(tmp_path):
    run = fake_run()
    run.notes = ["a long note " * 100] * 60  # ~70 kB: over a JPEG segment's 64 KiB
    written = write(run, tmp_path / "out.jpg", history=False, plot=False)
    assert written["record"].name == "out.json"
    with Image.open(tmp_path / "out.jpg") as img:
        assert img.format == "JPEG" and 0x9286 not in img.getexif().get_ifd(0x8769)
    assert read_run_record(tmp_path / "out.jpg")["notes"] == run.notes
    written = write(run, tmp_path / "out.webp", history=False, plot=False)  # WebP has room
    assert "record" not in written and read_run_record(tmp_path / "out.webp")["notes"] == run.notes


def test_corrupt_sidecar_is_one_line(tmp_path):
    write(fake_run(), tmp_path / "out.bmp", history=False, plot=False)
    (tmp_path / "out.json").write_text('{"image": {"file": "out.bmp"}, "settings": {}}')
    with pytest.raises(InputImageError, match="out.json': its saved restyle config is unreadable"):
        read_run_record(tmp_path / "out.bmp")


# ---- reading a file without a record ----------------------------------------------------------


@pytest.mark.parametrize("name", ["plain.png", "plain.jpg", "plain.webp", "plain.tif", "plain.bmp"])
def test_image_without_a_record_is_one_line(tmp_path, name):
    Image.new("RGB", (4, 4)).save(tmp_path / name)
    with pytest.raises(InputImageError) as info:
        read_run_record(tmp_path / name)
    assert str(info.value) == f"'{tmp_path / name}' holds no restyle run config (was it written by restyle run?)"


def test_user_comment_of_other_software_is_no_record(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0holiday snap"
    Image.new("RGB", (4, 4)).save(tmp_path / "snap.jpg", exif=exif)
    with pytest.raises(InputImageError, match="holds no restyle run config"):
        read_run_record(tmp_path / "snap.jpg")


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda p: p.write_text("a,b\n1,2\n"), "not an image file"),
    (lambda p: None, "not found"),
])
def test_not_an_image_or_missing_is_one_line(tmp_path, make, fragment):
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(InputImageError, match=fragment):
        read_run_record(path)


# ---- atomic writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.webp", "out.tif", "out.bmp"])
def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_bytes(KNOWN)

    def broken(*args: Any, **kwargs: Any) -> None:
        fp = next(a for a in args if hasattr(a, "write"))
        fp.write(b"the first bytes of the image")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken)
    monkeypatch.setattr(formats, "_write_tiff16", broken)
    with pytest.raises(OutputError, match="No space left on device"):
        write(fake_run(), path)
    assert path.read_bytes() == KNOWN
    assert os.listdir(tmp_path) == [name]  # no temporary file, no CSV, plot or sidecar


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def interrupted(file: Any, rgb: Any, description: bytes) -> None:
        file.write(b"II*\0")
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "_write_tiff16", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(fake_run(), tmp_path / "out.tif")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("name", "pillow_format"), [("out.jpg", "JPEG"), ("out.webp", "WEBP")])
def test_lossy_output_carries_a_record_that_from_image_reproduces(tmp_path, content, style, name, pillow_format):
    out, again = tmp_path / name, tmp_path / "again.png"
    result = restyle.stylize(content, style, output=out, quality=90, **CPU)
    with Image.open(out) as img:
        assert img.format == pillow_format
    assert read_run_record(out)["inputs"]["content"] == str(content.resolve())
    assert main(["run", "--from-image", str(out), "-o", str(again), "-q", "--no-history"]) == 0
    assert read_run_record(again)["config"] == read_run_record(out)["config"]
    with Image.open(again) as img:
        assert img.tobytes() == result.image.tobytes()  # the same run, bit for bit


def test_tiff_run_matches_the_float_output(tmp_path, content, style):
    result = restyle.stylize(content, style, output=tmp_path / "out.tif", history=False, plot=False, **CPU)
    floats = result.pixels[0].permute(1, 2, 0).double().numpy()
    assert np.abs(tiff_uint16(tmp_path / "out.tif") / 65535 - floats).max() <= 0.5 / 65535 + 1e-12
    assert read_run_record(tmp_path / "out.tif")["config"]["size"] == 32
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]


def test_quality_flag_reaches_the_jpeg(tmp_path, content, style):
    for quality in ("20", "95"):
        assert main(["run", str(content), str(style), "-o", str(tmp_path / f"q{quality}.jpg"), "--quality", quality,
                     "--no-history", "--size", "32", "-n", "0", "--device", "cpu", "-q"]) == 0
    assert (tmp_path / "q20.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size
