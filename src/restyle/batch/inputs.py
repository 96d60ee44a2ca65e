"""What a batch makes: its inputs (files, folders searched recursively for image files, globs, or
a manifest with a row per output) and, for each output, its content, styles, config and file
name ``OUT_DIR/{content}__{style}.png`` (made safe and unique).

A manifest is a CSV file with a header row, or a JSON Lines file (one object per line), with:

- ``content`` (required): the content image;
- ``styles`` (or ``style``): style image(s), separated by ``;`` in CSV or a JSON list; several
  make one blended output (``style_blend`` weighs them). A row without styles makes one output
  per ``--styles`` image;
- ``output`` (optional): the output's file name in OUT_DIR (its extension picks the format);
- ``preset`` and any run option, by its name or flag (``style_weight``, ``style-weight``,
  ``--style-weight``), as the text you would type after the flag (JSON values are accepted
  too). An empty cell leaves the option to the command line.

Relative paths in a manifest (images, masks, init images, weights files) are relative to the
manifest's folder.
"""

from __future__ import annotations

import csv
import functools
import glob
import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from restyle.config import Config, options, parse_field
from restyle.errors import ConfigError
from restyle.methods import Method, method_for

#: Files a folder or a glob contributes (files named one by one are taken whatever their name).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif", ".ppm", ".pgm",
                  ".pnm", ".tga")
#: Output formats, by the name ``--format`` takes.
FORMATS = ("png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp")
#: Manifest columns that are not run options.
COLUMNS = ("content", "styles", "output", "preset")
_ALIASES = {"style": "styles", "input": "content"}
#: Config fields that name files (relative to a manifest's folder when given there).
_PATH_FIELDS = ("masks", "style_masks", "label_image", "init", "weights")
_PATH_WORDS = ("none", "content", "noise", "download", "embedded")


@dataclass(frozen=True)
class Source:
    """An input image: its path as given or found, and the label its outputs are named by."""

    path: str
    label: str


@dataclass
class BatchItem:
    """One output of a batch."""

    content: str
    styles: list[str]
    config: Config
    output: Path
    source: str = ""  # where it was asked for: "" (the command line) or "m.csv line 4"

    @property
    def name(self) -> str:
        return self.output.name


@dataclass
class Row:
    """One manifest row, read."""

    content: Source
    styles: list[Source]
    options: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    output: str | None = None
    where: str = ""


# ---- inputs --------------------------------------------------------------------------------


def expand(specs: Iterable[str], what: str = "input", exclude: Path | None = None) -> list[Source]:
    """The image files ``specs`` name: files as given, folders searched recursively for image
    files (hidden ones and any under ``exclude``, the output folder, left out), globs (``**``
    too) matched to image files and folders. Each file once, in the order given, folders and
    globs sorted. A spec that names nothing: a one-line :class:`ConfigError`."""
    found: dict[str, Source] = {}
    skip = exclude.expanduser().resolve() if exclude is not None else None
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            sources = _scan(path, skip)
            if not sources:
                raise ConfigError(f"{what} folder '{spec}' holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        elif path.exists():
            sources = [Source(str(spec), path.stem)]
        elif glob.has_magic(spec):
            sources = []
            for match in sorted(glob.glob(os.path.expanduser(spec), recursive=True)):
                m = Path(match)
                if m.is_dir():
                    sources += _scan(m, skip)
                elif m.suffix.lower() in IMAGE_SUFFIXES and not _under(m, skip):
                    sources.append(Source(match, m.stem))
            if not sources:
                raise ConfigError(f"{what} '{spec}' matches no image files")
        else:
            raise ConfigError(f"{what} '{spec}': not found (no such file or folder)")
        for s in sources:
            found.setdefault(str(Path(s.path).resolve()), s)
    return list(found.values())


def _under(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def _scan(folder: Path, skip: Path | None) -> list[Source]:
    sources: list[tuple[tuple[str, ...], Source]] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _under(Path(root, d), skip))
        for name in sorted(files):
            p = Path(root, name)
            if not name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and not _under(p, skip):
                rel = p.relative_to(folder)
                sources.append((rel.parts, Source(str(p), "-".join(rel.with_suffix("").parts))))
    return [s for _, s in sorted(sources, key=lambda pair: pair[0])]


# ---- manifests -----------------------------------------------------------------------------


def read_manifest(path: str | Path) -> list[Row]:
    """The rows of a ``.csv`` or ``.jsonl`` manifest (see the module docstring); a bad column,
    row or option value: a one-line :class:`ConfigError` naming the file and line."""
    manifest = Path(path).expanduser()
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--manifest '{path}': cannot be read ({getattr(err, 'strerror', None) or err})") from None
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        records = []
        for values in reader:
            if None in values:
                raise ConfigError(f"{path} line {reader.line_num}: more cells than the header has columns")
            records.append((reader.line_num, {k: v for k, v in values.items() if v is not None and v.strip()}))
    elif suffix in (".jsonl", ".ndjson"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as err:
                raise ConfigError(f"{path} line {n}: not JSON ({err})") from None
            if not isinstance(value, dict):
                raise ConfigError(f"{path} line {n}: expected a JSON object, one per line")
            records.append((n, value))
    else:
        raise ConfigError(f"--manifest '{path}': expected a .csv or .jsonl file")
    if not records:
        raise ConfigError(f"--manifest '{path}' has no rows")
    base = manifest.parent
    return [_row(values, base, f"{path} line {n}") for n, values in records]


def _row(values: Mapping[str, Any], base: Path, where: str) -> Row:
    options: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    for column, value in values.items():
        key = str(column).strip()
        name = _ALIASES.get(key.lower(), key.lower())
        if name in COLUMNS:
            fixed[name] = value
            continue
        if value is None or value == "":
            continue
        try:
            field_name = _fields_by_flag().get(key.lower().lstrip("-").replace("-", "_"), key)
            parsed = parse_field(field_name, _text(value))
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        options[field_name] = _rebased(field_name, parsed, base)
    content = fixed.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ConfigError(f"{where}: no content image (a 'content' column)")
    styles = fixed.get("styles") or []
    if isinstance(styles, str):
        styles = [s for s in (x.strip() for x in styles.split(";")) if s]
    if not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
        raise ConfigError(f"{where}: styles must be paths separated by ';' (or a JSON list of paths)")
    output = fixed.get("output")
    if output is not None and (not isinstance(output, str) or re.search(r"[/\\]", output) or output in (".", "..")):
        raise ConfigError(f"{where}: output '{output}' must be a file name in the output folder")
    preset = fixed.get("preset")
    return Row(_source(content.strip(), base), [_source(s, base) for s in styles], options,
               str(preset) if preset else None, output or None, where)


@functools.cache
def _fields_by_flag() -> dict[str, str]:
    """Run-option fields by their names and flags, as a manifest column may name them
    (``style_weight``, ``mask`` for ``masks``, ``n`` for ``iterations``)."""
    found = {}
    for name, opt in options().items():
        found[name] = name
        for flag in opt.flags:
            found[flag.lstrip("-").replace("-", "_")] = name
    return found


def _text(value: Any) -> str:
    """A JSON value as the text a user would type for it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return repr(value)


def _source(path: str, base: Path) -> Source:
    p = Path(path).expanduser()
    shown = str(p if p.is_absolute() else base / p)
    return Source(shown, p.stem)


def _rebased(name: str, value: Any, base: Path) -> Any:
    """File options of a manifest row, relative to the manifest's folder."""
    if name not in _PATH_FIELDS or value is None:
        return value
    if isinstance(value, list):
        return [_rebased(name, v, base) for v in value]
    text = str(value)
    if text.lower() in _PATH_WORDS or Path(text).expanduser().is_absolute():
        return value
    return str(base / text)


# ---- the outputs ---------------------------------------------------------------------------


def safe(text: str, longest: int = 60) -> str:
    """``text`` as part of a file name: letters, digits, ``_ . -`` only (others become ``_``), no
    leading dot, at most ``longest`` characters (a long one keeps a hash of the rest)."""
    text = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", text)).strip("._") or "image"
    if len(text) > longest:
        text = text[:longest - 9] + "~" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return text


def labels(sources: Sequence[Source]) -> dict[str, str]:
    """A safe name per distinct source path: its label; files whose labels clash (case ignored)
    are all named by their path from the folder they share, without the extension if that is
    enough, else with it; what still clashes is numbered."""
    by_path = {s.path: s for s in sources}
    names = {p: safe(s.label) for p, s in by_path.items()}
    groups: dict[str, list[str]] = {}
    for p, n in names.items():
        groups.setdefault(n.lower(), []).append(p)
    for group in (g for g in groups.values() if len(g) > 1):
        common = Path(os.path.commonpath([str(Path(p).resolve().parent) for p in group]))
        for attempt in (_relative_stem, _relative_name):
            tried = {p: safe(attempt(Path(p).resolve(), common)) for p in group}
            if len({n.lower() for n in tried.values()}) == len(group):
                names.update(tried)
                break
    seen: set[str] = set()
    for p, n in names.items():
        unique, k = n, 1
        while unique.lower() in seen:
            k += 1
            unique = f"{n}-{k}"
        seen.add(unique.lower())
        names[p] = unique
    return names


def _relative_stem(path: Path, common: Path) -> str:
    return "-".join(path.relative_to(common).with_suffix("").parts)


def _relative_name(path: Path, common: Path) -> str:
    return "-".join(path.relative_to(common).parts)


def plan(inputs: Sequence[str], styles: Sequence[str], out_dir: str | Path, *, manifest: str | Path | None = None,
         options: Mapping[str, Any] | None = None, preset: str | None = None, fmt: str = "png") -> list[BatchItem]:
    """Every output of a batch: each INPUT × each style, then each manifest row (a row without
    styles: one output per style). ``options``: run options for all (a row's own win);
    ``fmt``: the output format's extension. Bad usage: a one-line :class:`ConfigError`."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder '{out_dir}' is a file")
    style_sources = expand(styles, "style", exclude=out) if styles else []
    rows = read_manifest(manifest) if manifest is not None else []
    common = _method(options or {}, preset)
    takes = common.paintings
    if inputs:
        if takes == "none" and style_sources:
            raise ConfigError(f"--method {common.name} takes no --styles: its model carries its styles")
        if takes == "required" and not style_sources:
            raise ConfigError("give --styles STYLE... (or --fast-model NAME) for the INPUT images")
        contents = expand(inputs, "input", exclude=out)
        rows = ([Row(c, []) for c in contents] if takes == "none" else
                [Row(c, [s]) for c in contents for s in style_sources]) + rows
    wanted: list[Row] = []
    for row in rows:
        row_method = _method({**(options or {}), **row.options}, row.preset or preset, row.where)
        if row_method.paintings == "none" and row.styles:
            raise ConfigError(f"{row.where or 'batch'}: --method {row_method.name} takes no styles: its model "
                              "carries them")
        if row.styles or row_method.paintings == "none":
            wanted.append(row)
        elif not style_sources:
            raise ConfigError(f"{row.where}: no styles, and no --styles to use for it")
        elif row.output is not None and len(style_sources) > 1:
            raise ConfigError(f"{row.where}: names an output but no styles, and --styles gives {len(style_sources)}")
        else:
            wanted += [Row(row.content, [s], row.options, row.preset, row.output, row.where) for s in style_sources]
    if not wanted:
        raise ConfigError("nothing to do: give INPUT images and --styles STYLE..., or --manifest FILE")
    content_names = labels([r.content for r in wanted])
    style_names = labels([s for r in wanted for s in r.styles])
    names = [_with_suffix(r.output, fmt) if r.output else "" for r in wanted]
    taken: set[str] = set()
    for row, name in zip(wanted, names):  # names the manifest gives come first
        if name and name.lower() in taken:
            raise ConfigError(f"{row.where}: output '{name}' is named twice")
        taken.add(name.lower())
    items: list[BatchItem] = []
    for row, name in zip(wanted, names):
        if not name:
            styled = "+".join(style_names[s.path] for s in row.styles) or _model_label(
                {**(options or {}), **row.options}, row.preset or preset)
            name = _with_suffix(f"{content_names[row.content.path]}__{styled}", fmt)
            stem, suffix = os.path.splitext(name)
            n = 1
            while name.lower() in taken:
                n += 1
                name = f"{stem}-{n}{suffix}"
            taken.add(name.lower())
        items.append(BatchItem(row.content.path, [s.path for s in row.styles], _config(row, options or {}, preset),
                               out / name, row.where))
    return items


def _method(options: Mapping[str, Any], preset: str | None, where: str = "") -> Method:
    """The method the options run (a bad option: a one-line error naming ``where``)."""
    try:
        return method_for(Config.from_values(options, preset=preset))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None


def _model_label(options: Mapping[str, Any], preset: str | None) -> str:
    """An output's name part for a method without style images: its model's name, else the method's."""
    config = Config.from_values(options, preset=preset)
    method = method_for(config)
    given = [str(getattr(config, f)) for f in method.owns if isinstance(getattr(config, f), str)]
    return safe(Path(given[0]).stem) if given else method.name


def _with_suffix(name: str, fmt: str) -> str:
    return name if Path(name).suffix.lower().lstrip(".") in FORMATS else f"{name}.{fmt}"


def _config(row: Row, options: Mapping[str, Any], preset: str | None) -> Config:
    try:
        config = Config.from_values({**options, **row.options}, preset=row.preset or preset)
        method = method_for(config)
        if method.paintings != "none":  # a model's blend weighs its own styles (checked when it runs)
            method.check(config, len(row.styles))
    except ConfigError as err:
        raise ConfigError(f"{row.where}: {err}" if row.where else str(err)) from None
    return config
