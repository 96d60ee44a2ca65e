"""Specification of restyle.images: loading every kind of input image (and refusing the bad
ones with one clear line), resizing, tensor conversion and atomic output."""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from restyle.errors import ConfigError, InputImageError, OutputError, RestyleError
from restyle.io import files
from restyle.io.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
    read_png_text,
    save_png,
)
from restyle.io.images import (
    DEFAULT_MAX_PIXELS,
    load_image,
    resize_longest,
    resize_to,
    to_image,
    to_tensor,
)

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


# --------------------------------------------------------------------------- helpers


def noise(width: int = 32, height: int = 24, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A random image (compresses badly, so a cut file is cut in the middle of pixel data)."""
    channels = len(Image.new(mode, (1, 1)).getbands())
    data = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    return Image.fromarray(data[:, :, 0] if channels == 1 else data).convert(mode)


def write(img: Image.Image, path: Path, **params) -> Path:
    img.save(path, **params)
    return path


def png_with_size(path: Path, width: int, height: int) -> Path:
    """A real 2x2 PNG whose IHDR is patched (CRC recomputed) to claim *width* x *height*."""
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), RED).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"  # 8-byte signature, 4-byte length, then the chunk type
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def load_error(source, **kwargs) -> str:
    """The message of the InputImageError that load_image raises, checked to be one line."""
    with pytest.raises(InputImageError) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def close(pixel, expected, tolerance: int = 12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


def notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "restyle" and r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- plain loading


def test_loads_a_jpeg_as_rgb(tmp_path):
    path = write(Image.new("RGB", (8, 6), BLUE), tmp_path / "blue.jpg")
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (8, 6)
    assert close(img.getpixel((4, 3)), BLUE)


def test_accepts_a_str_path(tmp_path):
    path = write(Image.new("RGB", (4, 4), GREEN), tmp_path / "g.png")
    assert load_image(str(path)).getpixel((0, 0)) == GREEN


def test_returns_a_new_image_for_a_pil_source():
    source = Image.new("RGB", (4, 4), RED)
    img = load_image(source)
    assert img is not source and img.tobytes() == source.tobytes()
    img.putpixel((0, 0), BLUE)
    assert source.getpixel((0, 0)) == RED


# --------------------------------------------------------------------------- refused inputs


def test_missing_file(tmp_path):
    path = tmp_path / "foo.jpg"
    assert load_error(path, role="content image") == f"content image '{path}': not found"


def test_directory(tmp_path):
    message = load_error(tmp_path, role="style image 2")
    assert message.startswith(f"style image 2 '{tmp_path}': ") and "directory" in message


def test_path_through_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    assert load_error(tmp_path / "file.txt" / "a.png").endswith(": not found")


def test_unreadable_file(tmp_path, monkeypatch):
    """Root can read anything, so the refusal of the system is simulated."""
    path = write(Image.new("RGB", (2, 2)), tmp_path / "secret.png")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)
    assert load_error(path, role="content image") == (
        f"content image '{path}': cannot be read (Permission denied)")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    message = load_error(path, role="content image")
    assert message.startswith(f"content image '{path}': ") and "not an image" in message


def test_empty_file_is_not_an_image(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "not an image" in load_error(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(tmp_path, fmt):
    whole = write(noise(64, 64), tmp_path / f"whole.{fmt.lower()}", format=fmt)
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    message = load_error(cut, role="style image")
    assert message.startswith(f"style image '{cut}': ")
    assert "truncated or corrupt" in message


def test_file_cut_inside_its_header(tmp_path):
    whole = write(noise(64, 64), tmp_path / "whole.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:300])
    message = load_error(cut, role="content image")
    assert message.startswith(f"content image '{cut}': ")
    assert "truncated or corrupt" in message


def test_truncated_file_given_as_lazily_opened_pil_image(tmp_path):
    whole = write(noise(64, 64), tmp_path / "whole.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with Image.open(cut) as lazy:  # only the header is read here
        assert "truncated or corrupt" in load_error(lazy, role="content image")


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (5, 1)])
def test_images_under_2x2_are_refused(tmp_path, size):
    path = write(Image.new("RGB", size), tmp_path / "tiny.png")
    message = load_error(path, role="content image")
    width, height = size
    assert message == (f"content image '{path}': image is {width}x{height} pixels; "
                       "need at least 2x2")


def test_2x2_is_accepted(tmp_path):
    assert load_image(write(Image.new("RGB", (2, 2)), tmp_path / "ok.png")).size == (2, 2)


def test_0x0_array_is_refused():
    assert load_error(np.zeros((0, 0, 3), np.uint8), role="content image") == (
        "content image: image is 0x0 pixels; need at least 2x2")


def test_png_with_0x0_header_is_refused(tmp_path):
    path = png_with_size(tmp_path / "zero.png", 0, 0)
    assert load_error(path, role="content image").startswith(f"content image '{path}': ")


def test_over_the_pixel_cap(tmp_path):
    path = write(Image.new("RGB", (10, 8)), tmp_path / "big.png")
    assert load_error(path, max_pixels=79, role="style image") == (
        f"style image '{path}': is 10 x 8 = 80 pixels, over the cap of 79 "
        "(raise it with --max-pixels)")
    assert load_image(path, max_pixels=80).size == (10, 8)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    path = png_with_size(tmp_path / "bomb.png", 100_000, 100_000)
    start = time.perf_counter()
    message = load_error(path)
    assert time.perf_counter() - start < 1.0
    assert message == (f"image '{path}': is 100000 x 100000 = 10000000000 pixels, over the cap "
                       f"of {DEFAULT_MAX_PIXELS} (raise it with --max-pixels)")


def test_pillow_bomb_limit_neither_interferes_nor_is_left_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # would make Pillow refuse 10x10
    path = write(Image.new("RGB", (10, 10), RED), tmp_path / "ten.png")
    assert load_image(path, max_pixels=1000).getpixel((5, 5)) == RED
    assert load_image(path, max_pixels=None).size == (10, 10)
    assert Image.MAX_IMAGE_PIXELS == 10


def test_pil_source_over_the_cap():
    assert "over the cap of 15" in load_error(Image.new("RGB", (4, 4)), max_pixels=15)


def test_unsupported_source_type():
    assert load_error(42, role="content image").startswith("content image: cannot use a int")


def test_errors_are_restyle_errors_with_exit_code_2(tmp_path):
    with pytest.raises(RestyleError) as info:
        load_image(tmp_path / "nope.png")
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- conversions


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = write(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    img = load_image(path)
    assert img.mode == "RGB" and close(img.getpixel((4, 4)), RED, 20)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768], [65535, 1000]], np.uint16)
    path = write(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    img = load_image(path)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == BLACK
    assert img.getpixel((1, 1)) == (4, 4, 4)  # 1000 / 257, not clipped to 255
    assert img.getpixel((0, 1)) == WHITE  # 65535 -> 255
    assert all(abs(v - 128) <= 1 for v in img.getpixel((1, 0)))  # 32768 -> ~128


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_pil_modes(mode):
    source = Image.new(mode, (2, 2))
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for xy, value in zip(corners, [0, 65535, 32768, 257]):
        source.putpixel(xy, value)
    img = load_image(source)
    assert [img.getpixel(xy) for xy in corners] == [(v, v, v) for v in (0, 255, 128, 1)]


@pytest.mark.parametrize(("values", "expected"), [
    ([0.0, 0.5, 1.0, 0.25], [0, 128, 255, 64]),  # 0-1 floats
    ([0.0, 100.0, 255.0, 50.0], [0, 100, 255, 50]),  # 0-255 floats
    ([-1.0, 0.0, 1.0, 3.0], [0, 64, 128, 255]),  # anything else: stretched
])
def test_float_mode(values, expected):
    source = Image.fromarray(np.array(values, np.float32).reshape(2, 2))
    assert source.mode == "F"
    img = load_image(source)
    assert [img.getpixel((i % 2, i // 2))[0] for i in range(4)] == expected


def test_palette_transparency_is_composited_on_white(tmp_path, caplog):
    source = Image.new("P", (4, 4), 0)
    source.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    source.putpixel((3, 3), 1)
    path = write(source, tmp_path / "pal.png", transparency=0)
    with Image.open(path) as raw:
        assert raw.mode == "P" and "transparency" in raw.info
    img = load_image(path, role="style image")
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == WHITE  # the transparent index, black in the palette
    assert img.getpixel((3, 3)) == RED
    assert any("composited on white" in m for m in notices(caplog))


def test_la_image_is_composited_on_white(tmp_path):
    source = Image.new("LA", (3, 2), (0, 255))
    for x, alpha in enumerate([0, 255, 128]):
        source.putpixel((x, 0), (0, alpha))
    img = load_image(write(source, tmp_path / "la.png"))
    assert img.getpixel((0, 0)) == WHITE
    assert img.getpixel((1, 0)) == BLACK
    assert all(abs(v - 127) <= 1 for v in img.getpixel((2, 0)))


@pytest.mark.parametrize("mode", ["RGBA", "PA"])
def test_other_alpha_modes_are_composited_on_white(mode):
    source = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    source.putpixel((1, 1), (255, 0, 0, 255))
    if mode == "PA":
        source = source.convert("PA")
    img = load_image(source)
    assert img.getpixel((0, 0)) == WHITE and img.getpixel((1, 1)) == RED


def test_opaque_alpha_gives_no_notice(caplog):
    load_image(Image.new("RGBA", (2, 2), (1, 2, 3, 255)))
    assert notices(caplog) == []


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_becomes_rgb(tmp_path, mode):
    source = Image.new(mode, (4, 2), 0)
    source.putpixel((3, 1), 255 if mode == "L" else 1)
    img = load_image(write(source, tmp_path / "gray.png"))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == BLACK and img.getpixel((3, 1)) == WHITE


def test_exif_orientation_is_honoured(tmp_path):
    source = Image.new("RGB", (40, 20), RED)
    source.paste(BLUE, (20, 0, 40, 20))  # left half red, right half blue
    exif = source.getexif()
    exif[0x0112] = 6  # Orientation: the camera was turned; rotate 90 degrees clockwise to view
    path = write(source, tmp_path / "rotated.jpg", exif=exif.tobytes())
    img = load_image(path)
    assert img.size == (20, 40)
    assert close(img.getpixel((10, 5)), RED, 30)  # the left half is now on top
    assert close(img.getpixel((10, 35)), BLUE, 30)


def test_animated_gif_uses_the_first_frame(tmp_path, caplog):
    frames = [Image.new("RGB", (4, 4), colour) for colour in (RED, GREEN, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    img = load_image(path, role="style image")
    assert img.mode == "RGB" and img.getpixel((1, 1)) == RED
    assert f"style image '{path}' is animated (3 frames); using the first frame" in notices(caplog)


def test_animated_png_uses_the_first_frame(tmp_path, caplog):
    frames = [Image.new("RGB", (4, 4), colour) for colour in (GREEN, BLUE)]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    assert load_image(path).getpixel((0, 0)) == GREEN
    assert any("is animated (2 frames)" in m for m in notices(caplog))


def test_still_image_gives_no_notice(tmp_path, caplog):
    load_image(write(Image.new("RGB", (4, 4)), tmp_path / "still.gif"))
    assert notices(caplog) == []


# --------------------------------------------------------------------------- arrays and tensors


@pytest.mark.parametrize(("array", "expected"), [
    (np.full((2, 3, 3), (255, 0, 0), np.uint8), RED),
    (np.full((2, 3), 255, np.uint8), WHITE),
    (np.full((2, 3, 1), 0, np.uint8), BLACK),
    (np.full((2, 3, 3), (0.0, 1.0, 0.0), np.float32), GREEN),
    (np.full((2, 3, 3), (0.0, 0.0, 65535), np.uint16), BLUE),
    (np.full((2, 3, 4), (0, 0, 0, 0), np.uint8), WHITE),  # transparent -> white
    (np.full((2, 3, 4), (0, 0, 255, 255), np.uint8), BLUE),
    (np.ones((2, 3), bool), WHITE),
    (np.full((2, 3, 3), (0, 255, 0), np.int64), GREEN),
])
def test_numpy_sources(array, expected):
    img = load_image(array)
    assert img.mode == "RGB" and img.size == (3, 2) and img.getpixel((2, 1)) == expected


def test_uint16_array_is_scaled():
    img = load_image(np.full((2, 2), 32768, np.uint16))
    assert img.getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize(("array", "fragment"), [
    (np.zeros((2, 2, 2), np.uint8), "shape (2, 2, 2)"),
    (np.zeros((3, 4, 5, 6), np.uint8), "not an image"),
    (np.full((2, 2, 3), np.nan, np.float32), "NaN"),
    (np.full((2, 2, 3), 1000, np.int32), "0-255"),
    (np.zeros((2, 2, 3), np.complex64), "dtype complex64"),
])
def test_bad_arrays(array, fragment):
    message = load_error(array, role="content image")
    assert message.startswith("content image: ") and fragment in message


def test_float_array_out_of_range_is_clipped_with_a_notice(caplog):
    img = load_image(np.full((2, 2, 3), 2.0, np.float32))
    assert img.getpixel((0, 0)) == WHITE
    assert any("clipped" in m for m in notices(caplog))


@pytest.mark.parametrize("shape", [(3, 2, 5), (1, 3, 2, 5)])
def test_tensor_sources(shape):
    tensor = torch.zeros(shape)
    tensor[..., 0, :, :] = 1.0  # red
    img = load_image(tensor)
    assert img.size == (5, 2) and img.getpixel((4, 1)) == RED


def test_tensor_with_grad_on_any_dtype():
    tensor = torch.full((3, 2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    assert load_image(tensor).getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 4, 4), (4, 4)])
def test_bad_tensor_shapes(shape):
    assert "is not an image" in load_error(torch.zeros(shape))


def test_to_tensor():
    img = Image.new("RGB", (5, 3), (255, 0, 51))
    tensor = to_tensor(img)
    assert tensor.shape == (1, 3, 3, 5) and tensor.dtype == torch.float32
    assert tensor.is_contiguous()
    assert torch.allclose(tensor[0, :, 1, 2], torch.tensor([1.0, 0.0, 0.2]))


def test_to_tensor_converts_other_modes():
    assert to_tensor(Image.new("L", (2, 2), 255)).shape == (1, 3, 2, 2)


def test_tensor_round_trip_is_exact():
    img = noise(7, 5)
    assert to_image(to_tensor(img)).tobytes() == img.tobytes()
    assert to_image(to_tensor(img)[0]).tobytes() == img.tobytes()


def test_to_image_clamps_and_rounds():
    pixels = [[-1.0, float("nan"), 0.4 / 255], [2.0, 1.6 / 255, 0.4]]  # two RGB pixels
    tensor = torch.tensor(pixels).T.reshape(1, 3, 1, 2)
    img = to_image(tensor)
    assert img.mode == "RGB" and img.size == (2, 1)
    assert img.getpixel((0, 0)) == (0, 0, 0)  # below 0 -> 0, NaN -> 0, 0.4 -> 0
    assert img.getpixel((1, 0)) == (255, 2, 102)  # above 1 -> 255, 1.6 -> 2, 0.4*255 -> 102


def test_to_image_rejects_other_shapes():
    with pytest.raises(ValueError):
        to_image(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        to_image(torch.zeros(4, 4, 4))


# --------------------------------------------------------------------------- resizing


@pytest.mark.parametrize(("size", "longest", "expected"), [
    ((40, 20), 10, (10, 5)),
    ((20, 40), 10, (5, 10)),
    ((30, 30), 64, (64, 64)),  # upscaling is allowed
    ((100, 2), 10, (10, 2)),  # the short side stays at least 2
])
def test_resize_longest(size, longest, expected):
    out = resize_longest(Image.new("RGB", size), longest)
    assert out.size == expected and out.mode == "RGB"


def test_resize_longest_none_is_unchanged():
    img = Image.new("RGB", (7, 3))
    assert resize_longest(img, None) is img


def test_resize_to():
    assert resize_to(noise(8, 8), (5, 3)).size == (5, 3)


@pytest.mark.parametrize("call", [lambda img: resize_longest(img, 1),
                                  lambda img: resize_to(img, (1, 4))])
def test_resize_refuses_under_2_pixels(call):
    with pytest.raises(ConfigError):
        call(Image.new("RGB", (4, 4)))


# --------------------------------------------------------------------------- output paths


def test_check_output_path_returns_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_path("out.png") == tmp_path.resolve() / "out.png"
    assert os.listdir(tmp_path) == []  # the writability probe leaves nothing behind


def test_check_output_path_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(OutputError, match=f"^output directory '{missing}' does not exist$"):
        check_output_path(missing / "out.png")


def test_check_output_path_is_a_directory(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        check_output_path(tmp_path)


def test_check_output_path_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a directory"):
        check_output_path(tmp_path / "file" / "out.png")


def test_check_output_path_read_only_directory(read_only_dir):
    with pytest.raises(OutputError, match=f"^output directory '{read_only_dir}' is not writable"):
        check_output_path(read_only_dir / "out.png")


def test_check_output_path_when_files_cannot_be_created(tmp_path, monkeypatch):
    """os.access says yes (as it does for root, or on a read-only mount) but creating fails."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(OutputError, match="is not writable \\(Read-only file system\\)"):
        check_output_path(tmp_path / "out.png")


def test_save_png_into_read_only_directory_writes_nothing(read_only_dir):
    with pytest.raises(OutputError):
        save_png(Image.new("RGB", (2, 2)), read_only_dir / "out.png")
    assert os.listdir(read_only_dir) == []


# --------------------------------------------------------------------------- saving


def test_save_png_round_trip_with_text(tmp_path):
    img = noise(6, 4)
    text = {"restyle:content": "a.jpg", "restyle:style": "stíle ✓ 星", "empty": ""}
    path = save_png(img, tmp_path / "out.png", text=text)
    assert path == (tmp_path / "out.png").resolve()
    assert read_png_text(path) == text
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.tobytes() == img.tobytes()
    assert os.listdir(tmp_path) == ["out.png"]


def test_save_png_without_text(tmp_path):
    path = save_png(Image.new("RGB", (2, 2)), tmp_path / "plain.png")
    assert read_png_text(path) == {}


def test_saved_file_gets_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_png(Image.new("RGB", (2, 2)), tmp_path / "out.png")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not the temporary file's 0o600


def test_overwriting_keeps_the_existing_permissions(tmp_path):
    path = tmp_path / "out.png"
    save_png(Image.new("RGB", (2, 2)), path)
    path.chmod(0o640)
    save_png(Image.new("RGB", (3, 3)), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with Image.open(path) as saved:
        assert saved.size == (3, 3)


@pytest.mark.parametrize(("failure", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device"), OutputError),
    (RuntimeError("encoder crashed"), RuntimeError),
])
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch,
                                                                failure, expected):
    path = tmp_path / "out.png"
    save_png(Image.new("RGB", (2, 2), RED), path, text={"v": "1"})
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n partial")  # some bytes, then the failure
        raise failure

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(expected) as info:
        save_png(Image.new("RGB", (2, 2), BLUE), path, text={"v": "2"})
    if expected is OutputError:
        assert "No space left on device" in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OutputError, match="cross-device"):
        save_png(Image.new("RGB", (2, 2)), tmp_path / "out.png")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_save_png_to_missing_directory(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        save_png(Image.new("RGB", (2, 2)), tmp_path / "nope" / "out.png")


def test_temp_file_is_in_the_target_directory_with_png_suffix(tmp_path, monkeypatch):
    seen = []

    def spying_save(self, fp, *args, **kwargs):
        seen.append(Path(fp.name))
        raise RuntimeError("stop")

    monkeypatch.setattr(Image.Image, "save", spying_save)
    with pytest.raises(RuntimeError):
        save_png(Image.new("RGB", (2, 2)), tmp_path / "out.png")
    assert seen[0].parent == tmp_path.resolve() and seen[0].name.endswith(".png.tmp")


def test_atomic_write_text_and_bytes(tmp_path):
    path = atomic_write_text(tmp_path / "table.csv", "a,b\r\n1,ü\r\n")
    assert path == (tmp_path / "table.csv").resolve()
    assert path.read_bytes() == "a,b\r\n1,ü\r\n".encode()
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["table.csv"]


def test_atomic_write_refuses_a_directory_target(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        atomic_write_text(tmp_path / "d", "x")


# --------------------------------------------------------------------------- reading PNG text


def test_read_png_text_reads_chunks_written_by_others(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("plain", "tEXt value")
    info.add_text("zipped", "zTXt value", zip=True)
    info.add_itxt("intl", "iTXt ✓")
    path = write(Image.new("RGB", (2, 2)), tmp_path / "t.png", pnginfo=info)
    assert read_png_text(path) == {"plain": "tEXt value", "zipped": "zTXt value",
                                   "intl": "iTXt ✓"}


def test_read_png_text_missing_file(tmp_path):
    with pytest.raises(InputImageError, match="not found"):
        read_png_text(tmp_path / "gone.png")


def test_read_png_text_not_a_png(tmp_path):
    path = write(Image.new("RGB", (2, 2)), tmp_path / "photo.png", format="JPEG")
    with pytest.raises(InputImageError, match="is a JPEG file, not a PNG"):
        read_png_text(path)
