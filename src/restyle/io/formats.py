"""Output formats, chosen by the output's extension, each written atomically with the run record
inside the file where the format has room for it:

========================  ==============================================  =========================
extension                 pixels                                          run record
========================  ==============================================  =========================
``.png``                  8-bit RGB, lossless                             text chunk ``restyle``
``.jpg`` ``.jpeg``        8-bit RGB, lossy (``quality``, default 95)      EXIF UserComment
``.webp``                 8-bit RGB, lossy (``quality``, default 95)      EXIF UserComment
``.tif`` ``.tiff``        16-bit RGB from the float output, uncompressed  TIFF ImageDescription
``.bmp``                  8-bit RGB, uncompressed                         none: sidecar ``OUT.json``
========================  ==============================================  =========================

A JPEG's EXIF block cannot exceed 64 KiB; a record too large for it goes to the sidecar too.
Pillow cannot write 16-bit RGB TIFF, so :func:`_write_tiff16` writes the baseline TIFF itself.
Torch-free: the float pixels arrive as a NumPy array.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from restyle._version import __version__
from restyle.errors import ConfigError, InputImageError, OutputError
from restyle.io.files import _DECODE_ERRORS, _atomic_file, _describe, _open, _pillow_pixel_limit, check_output_path

PNG_KEY = "restyle"  # the PNG text chunk holding the run record
DEFAULT_QUALITY = 95

_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_SOFTWARE = 0x0131
_ASCII_PREFIX = b"ASCII\0\0\0"  # UserComment's character-code prefix (Exif 2.3, 4.6.5)
_JPEG_MARKER_MAX = 65533  # the most bytes one JPEG APP1 segment holds (Pillow's limit too)


@dataclass(frozen=True)
class Format:
    name: str  # Pillow's name, or "TIFF" for the 16-bit writer
    lossy: bool  # takes a quality
    embeds: bool  # has room for the run record


FORMATS = {
    ".png": Format("PNG", lossy=False, embeds=True),
    ".jpg": Format("JPEG", lossy=True, embeds=True),
    ".jpeg": Format("JPEG", lossy=True, embeds=True),
    ".webp": Format("WEBP", lossy=True, embeds=True),
    ".tif": Format("TIFF", lossy=False, embeds=True),
    ".tiff": Format("TIFF", lossy=False, embeds=True),
    ".bmp": Format("BMP", lossy=False, embeds=False),
}
SUPPORTED = ", ".join(FORMATS)


def output_format(path: str | os.PathLike, quality: int | None = None) -> Format:
    """The format for an output at *path* (by its extension, any case), or a one-line
    :class:`OutputError` listing the supported extensions; *quality* is checked against it."""
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        what = f"an unsupported extension '{Path(path).suffix}'" if suffix else "no extension"
        raise OutputError(f"output '{os.fspath(path)}' has {what}; the format is chosen by the extension: "
                          f"use one of {SUPPORTED}")
    if quality is not None:
        if not fmt.lossy:
            raise ConfigError(f"--quality applies to JPEG and WebP outputs (.jpg, .jpeg, .webp), "
                              f"not to '{Path(path).suffix}' files, which are lossless")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ConfigError(f"--quality must be a whole number from 1 to 100, got {quality!r}")
    return fmt


def image_stem(path: str | os.PathLike) -> Path:
    """*path* without its image extension (if it has a supported one): the ``OUT`` of the side
    files ``OUT.losses.csv``, ``OUT.json``..."""
    out = Path(path)
    return out.with_suffix("") if out.suffix.lower() in FORMATS else out


# ---- writing ---------------------------------------------------------------------------------


def write_image(path: str | os.PathLike, image: Image.Image, record: str, *, pixels: Any = None,
                quality: int | None = None) -> tuple[Path, bool]:
    """Write *image* (8-bit RGB) to *path* atomically in the format its extension names, with
    *record* (ASCII text: JSON with ``ensure_ascii``) embedded where the format has room.
    *pixels* (HxWx3 float array in [0, 1], or None) feeds the 16-bit TIFF.
    Returns the resolved path and whether the record is inside the file (else the caller writes
    a sidecar). Raises :class:`OutputError` if it cannot be written; the old file is kept."""
    fmt = output_format(path, quality)
    target = check_output_path(path)
    data = record.encode("ascii")  # JSON written with ensure_ascii; anything else is a bug
    if quality is None:
        quality = DEFAULT_QUALITY
    embedded = fmt.embeds
    with _atomic_file(target) as file:
        if fmt.name == "PNG":
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_text(PNG_KEY, record)
            image.save(file, format="PNG", pnginfo=info)
        elif fmt.name in ("JPEG", "WEBP"):
            exif = _exif(data)
            embedded = fmt.name == "WEBP" or len(exif) <= _JPEG_MARKER_MAX
            image.save(file, format=fmt.name, quality=quality, exif=exif if embedded else _exif(None))
        elif fmt.name == "TIFF":
            source = pixels if pixels is not None else np.asarray(image.convert("RGB"))
            _write_tiff16(file, source, data)
        else:
            image.save(file, format=fmt.name)
    return target, embedded


def _exif(record: bytes | None) -> bytes:
    exif = Image.Exif()
    exif[_SOFTWARE] = f"restyle {__version__}"
    if record is not None:
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _ASCII_PREFIX + record
    return exif.tobytes()


def _uint16(rows: np.ndarray) -> np.ndarray:
    """Rows of samples as little-endian uint16: uint8 times 257; floats in [0, 1] (clipped, NaN
    as 0) times 65535, rounded."""
    if rows.dtype == np.uint8:
        return rows.astype("<u2") * 257
    values = np.nan_to_num(rows.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0, copy=False)
    np.clip(values, 0.0, 1.0, out=values)
    return np.rint(values * 65535, out=values).astype("<u2")


# TIFF field types
_ASCII, _SHORT, _LONG, _RATIONAL = 2, 3, 4, 5
_TYPE_SIZE = {_ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8}
_TYPE_CODE = {_ASCII: "s", _SHORT: "H", _LONG: "I", _RATIONAL: "I"}


def _write_tiff16(file: IO[bytes], pixels: Any, description: bytes) -> None:
    """Write *pixels* (HxWx3: float in [0, 1], or uint8) as a baseline little-endian TIFF: one
    image, RGB, 16 bits per sample, chunky, uncompressed, in strips of about 8 KiB, with
    *description* (ASCII) as its ImageDescription. The samples are converted a block of rows
    at a time, so a large image needs little memory beyond its own."""
    rgb = np.asarray(pixels)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 pixels, got shape {rgb.shape}")
    height, width, _ = rgb.shape
    row_bytes = width * 6
    rows_per_strip = max(1, 8192 // row_bytes)
    strips = -(-height // rows_per_strip)
    counts = [min(rows_per_strip, height - i * rows_per_strip) * row_bytes for i in range(strips)]
    entries: list[tuple[int, int, Any]] = [  # (tag, type, values), in ascending tag order
        (256, _LONG, [width]),
        (257, _LONG, [height]),
        (258, _SHORT, [16, 16, 16]),  # BitsPerSample
        (259, _SHORT, [1]),  # Compression: none
        (262, _SHORT, [2]),  # PhotometricInterpretation: RGB
        (270, _ASCII, description + b"\0"),  # ImageDescription
        (273, _LONG, [0] * strips),  # StripOffsets, filled in below
        (277, _SHORT, [3]),  # SamplesPerPixel
        (278, _LONG, [rows_per_strip]),
        (279, _LONG, counts),  # StripByteCounts
        (282, _RATIONAL, [72, 1]),  # XResolution
        (283, _RATIONAL, [72, 1]),  # YResolution
        (284, _SHORT, [1]),  # PlanarConfiguration: chunky
        (296, _SHORT, [2]),  # ResolutionUnit: inch
        (305, _ASCII, f"restyle {__version__}".encode("ascii") + b"\0"),  # Software
        (339, _SHORT, [1, 1, 1]),  # SampleFormat: unsigned integer
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    # Values over 4 bytes go after the IFD (word-aligned); the pixels follow them.
    sizes = [_TYPE_SIZE[kind] * (len(values) if kind == _ASCII else len(values) // (2 if kind == _RATIONAL else 1))
             for _, kind, values in entries]
    data_at = extra_at + sum(s + s % 2 for s in sizes if s > 4)
    if data_at + sum(counts) >= 2**32:
        raise OutputError(f"a {width}x{height} 16-bit image is too large for a TIFF file (4 GiB); use .png")
    offsets = [data_at + sum(counts[:i]) for i in range(strips)]
    entries = [(tag, kind, offsets if tag == 273 else values) for tag, kind, values in entries]
    ifd = [struct.pack("<4sIH", b"II*\0", 8, len(entries))]
    extra: list[bytes] = []
    offset = extra_at
    for (tag, kind, values), size in zip(entries, sizes):
        packed = (struct.pack(f"<{len(values)}s", values) if kind == _ASCII
                  else struct.pack(f"<{len(values)}{_TYPE_CODE[kind]}", *values))
        count = len(values) // 2 if kind == _RATIONAL else len(values)
        if size <= 4:
            ifd.append(struct.pack("<HHI4s", tag, kind, count, packed.ljust(4, b"\0")))
        else:
            ifd.append(struct.pack("<HHII", tag, kind, count, offset))
            extra.append(packed + b"\0" * (size % 2))
            offset += size + size % 2
    ifd.append(struct.pack("<I", 0))  # no next IFD
    file.write(b"".join(ifd + extra))
    assert file.tell() == data_at
    block = max(1, 2**20 // row_bytes)
    for top in range(0, height, block):
        file.write(_uint16(rgb[top:top + block]).tobytes())


# ---- reading ---------------------------------------------------------------------------------


def read_embedded(path: str | os.PathLike) -> str | None:
    """The run-record text embedded in the image file at *path* (None if it holds none), or a
    one-line :class:`InputImageError` if it is not an image Pillow can read."""
    label = f"image '{os.fspath(path)}'"
    with _pillow_pixel_limit(None):
        img = _open(Path(path), label)
    with img:
        try:
            if img.format == "PNG":
                text = img.text.get(PNG_KEY)  # type: ignore[attr-defined]
                return None if text is None else str(text)
            if img.format in ("JPEG", "MPO", "WEBP"):
                comment = img.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
                if isinstance(comment, str):
                    comment = comment.encode("latin-1", "replace")
                if isinstance(comment, bytes) and comment.startswith(_ASCII_PREFIX + b"{"):
                    return comment[len(_ASCII_PREFIX):].rstrip(b"\0").decode("ascii", "replace")
                return None  # no comment, or another program's
            if img.format == "TIFF":
                description = img.tag_v2.get(270)  # type: ignore[attr-defined]
                return description if isinstance(description, str) and description.startswith("{") else None
        except _DECODE_ERRORS as exc:
            raise InputImageError(f"{label}: is truncated or corrupt ({_describe(exc)})") from None
    return None
