"""Files: opening image files with one-line errors, Pillow's pixel cap, the output-path check,
whether two paths are one file, atomic writes (temporary file + rename) and PNG text chunks.
Torch-free. The output formats are in :mod:`restyle.io.formats`."""

from __future__ import annotations

import os
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from restyle.errors import InputImageError, OutputError

#: What Pillow raises while decoding broken or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  struct.error, zlib.error)

_PIXEL_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------- loading


def _open(path: Path, label: str) -> Image.Image:
    """``Image.open`` (header only) with every failure turned into an :class:`InputImageError`."""
    try:
        return Image.open(path)
    except IsADirectoryError:
        raise InputImageError(f"{label}: is a directory, not an image file") from None
    except (FileNotFoundError, NotADirectoryError):
        raise InputImageError(f"{label}: not found") from None
    except UnidentifiedImageError:
        raise InputImageError(f"{label}: not an image file, or one in a format Pillow cannot "
                              "read, or its header is corrupt") from None
    except OSError as exc:
        if exc.errno is not None:  # from the system (permissions, I/O), not from a decoder
            raise InputImageError(f"{label}: cannot be read ({exc.strerror})") from None
        error: Exception = exc
    except _DECODE_ERRORS as exc:
        error = exc
    raise InputImageError(f"{label}: cannot read the image header; the file is truncated "
                          f"or corrupt ({_describe(error)})")


@contextmanager
def _pillow_pixel_limit(limit: int | None) -> Iterator[None]:
    """Make Pillow's own decompression-bomb checks use *limit* (``None``: off) and raise
    instead of warning, for the duration of the block."""
    with _PIXEL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _describe(exc: BaseException) -> str:
    """A short description of a low-level exception for the end of an error message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- output ---------------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike) -> Path:
    """Return *path* resolved, or raise :class:`OutputError` if a file cannot be written there:
    it is a directory, or its directory is missing or not writable (checked with ``os.access``
    and by creating and deleting a temporary file there, since ``os.access`` says yes to root)."""
    given = Path(path).expanduser()
    target = given.resolve()
    if target.is_dir():
        raise OutputError(f"output path '{given}' is a directory")
    directory = target.parent
    shown = given.parent
    if not directory.exists():
        raise OutputError(f"output directory '{shown}' does not exist")
    if not directory.is_dir():
        raise OutputError(f"output directory '{shown}' is not a directory")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"output directory '{shown}' is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".restyle-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"output directory '{shown}' is not writable "
                          f"({exc.strerror or exc})") from None
    return target


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether paths *a* and *b* name the same file: equal once resolved (symbolic links
    followed), or, when both exist, the same file on disk (hard links, case-insensitive or
    bind-mounted file systems)."""
    first, second = Path(a).expanduser(), Path(b).expanduser()
    if first.resolve() == second.resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except (OSError, ValueError):  # one of them does not exist (or cannot be reached)
        return False


@contextmanager
def _atomic_file(target: Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces *target* when the block succeeds: the one
    implementation of write-to-temporary-then-rename.

    The data go to a temporary file in the same directory, which is flushed to disk and then
    renamed over *target* (an atomic replace), so *target* never holds a partial file and keeps
    its old contents if anything fails; the temporary file is removed on any failure.
    An ``OSError`` becomes an :class:`OutputError`; other exceptions propagate unchanged.
    """
    try:
        tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                          suffix=f"{target.suffix}.tmp", delete=False)
    except OSError as exc:
        raise OutputError(f"cannot write '{target}': {exc.strerror or exc}", exc.errno) from None
    try:
        with tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, _new_file_mode(target))
        os.replace(tmp.name, target)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp.name)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write '{target}': {exc.strerror or _describe(exc)}", exc.errno) from None
        raise


def _new_file_mode(target: Path) -> int:
    """The permissions for *target*: those of the file it replaces, else 0o666 less the umask
    (temporary files are created 0o600)."""
    with suppress(FileNotFoundError):
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write *data* to *path* atomically (never a partial file, the old file kept on failure);
    return the resolved path. Raises :class:`OutputError` if it cannot be written."""
    target = check_output_path(path)
    with _atomic_file(target) as file:
        file.write(data)
    return target


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write *text* (newlines as given) to *path* atomically; return the resolved path."""
    return atomic_write_bytes(path, text.encode(encoding))


def save_png(img: Image.Image, path: str | os.PathLike, *,
             text: dict[str, str] | None = None) -> Path:
    """Write *img* as a PNG to *path* atomically, with *text* as tEXt chunks (iTXt for values
    that are not Latin-1); return the resolved path. Raises :class:`OutputError` if it cannot
    be written."""
    target = check_output_path(path)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    with _atomic_file(target) as file:
        img.save(file, format="PNG", pnginfo=info)
    return target


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """The (width, height) an image file's header declares (a bomb's too: nothing is decoded), or None when
    it has none readable: the loader then says what is wrong with the file."""
    try:
        with _pillow_pixel_limit(None), Image.open(path) as img:
            return img.size
    except Exception:  # noqa: BLE001 - any failure to read a header means "no size"
        return None


def read_png_text(path: str | os.PathLike) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of the PNG file at *path*."""
    label = f"PNG file '{os.fspath(path)}'"
    with _pillow_pixel_limit(None):
        img = _open(Path(path), label)
    with img:
        if img.format != "PNG":
            raise InputImageError(f"{label}: is a {img.format} file, not a PNG")
        try:
            return {key: str(value) for key, value in img.text.items()}  # type: ignore[attr-defined]
        except _DECODE_ERRORS as exc:
            raise InputImageError(f"{label}: is truncated or corrupt ({_describe(exc)})") from None
