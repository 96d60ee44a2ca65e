"""Fast-model files: a trained :class:`~restyle.nn.transformer.TransformerNet` with its record.

A model file is a ``torch.save`` of a dict holding only tensors, numbers, strings and bytes (it
loads with ``weights_only=True``, so a model file cannot run code):

- ``format`` (``"restyle-fast"``) and ``version`` (:data:`FORMAT_VERSION`);
- ``shape``: the network's :class:`~restyle.nn.transformer.NetShape`;
- ``state``: its parameters;
- ``record``: how it was made: the styles (name, SHA-256 of the file, the image as PNG bytes at
  the size it was trained at, so ``--refine`` can optimise towards the same paintings), the
  training options (a :class:`~restyle.config.Config` as a dict), steps, photos, seconds, final
  loss and the restyle version;
- ``train`` (checkpoints only): the optimiser's state and the step, for ``--resume``.

Names: a path to a file; else a bundled model (``restyle/models/NAME.pt``); else the name of a
style inside a bundled model (``starry_night``: the bundled model that holds it, that style alone).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from restyle._version import __version__
from restyle.blend import blend_weights
from restyle.errors import ConfigError
from restyle.nn.transformer import NetShape, TransformerNet

FORMAT = "restyle-fast"
FORMAT_VERSION = 1
BUNDLED = Path(__file__).resolve().parent.parent / "models"
SUFFIXES = (".pt",)


@dataclass
class FastModel:
    """A loaded model: the network (eval mode, frozen), its record, and where it came from."""

    net: TransformerNet
    record: dict[str, Any]
    source: str
    #: The blend a bundled style's name selects (None: the caller's or equal weights).
    blend: list[float] | None = None
    train: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def style_names(self) -> list[str]:
        return [s["name"] for s in self.record.get("styles", [])]

    def style_images(self) -> list[Image.Image]:
        """The style images it was trained on, as stored in the file."""
        return [Image.open(io.BytesIO(s["png"])).convert("RGB") for s in self.record["styles"]]


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_model(path: str | Path, net: TransformerNet, record: dict[str, Any],
               train: dict[str, Any] | None = None) -> None:
    """Write ``net`` and ``record`` to ``path`` (written to a temporary file and renamed, so a
    reader or a crash never sees half a file)."""
    path = Path(path)
    blob: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "shape": net.shape.as_dict(),
                            "state": {k: v.detach().cpu().float() for k, v in net.state_dict().items()},
                            "record": {**record, "restyle": __version__}}
    if train is not None:
        blob["train"] = train
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def read_model(path: str | Path) -> FastModel:
    """The model in the file at ``path``; a file that is not one is a one-line :class:`ConfigError`."""
    path = Path(path)
    label = f"fast model '{path}'"
    if not path.is_file():
        raise ConfigError(f"{label} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise ConfigError(f"{label} is not a restyle fast model (unreadable: {type(err).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ConfigError(f"{label} is not a restyle fast model")
    if blob.get("version") != FORMAT_VERSION:
        raise ConfigError(f"{label} is of model format {blob.get('version')}; this restyle reads format "
                          f"{FORMAT_VERSION}: train it again with this version")
    try:
        net = TransformerNet(NetShape(**blob["shape"]))
        net.load_state_dict(blob["state"])
    except (TypeError, KeyError, RuntimeError) as err:
        raise ConfigError(f"{label} is damaged: its parameters do not fit its shape ({str(err).splitlines()[0]})") \
            from None
    net.eval().requires_grad_(False)
    return FastModel(net, dict(blob["record"]), str(path), train=blob.get("train"))


_cache: dict[tuple[str, float], FastModel] = {}
_lock = threading.Lock()


def load_model(name: str) -> FastModel:
    """The model ``name`` names (a path, a bundled model, or a style in one), cached per file and
    modification time."""
    path, style = resolve(name)
    model = _cached(path)
    if style is None:
        return model
    names = model.style_names
    return FastModel(model.net, model.record, model.source, [float(n == style) for n in names])


def _cached(path: Path) -> FastModel:
    """The model in ``path``, read once per file and modification time."""
    key = (str(path), path.stat().st_mtime)
    with _lock:
        if key not in _cache:
            _cache[key] = read_model(path)
        return _cache[key]


def resolve(name: str) -> tuple[Path, str | None]:
    """(file, style) for a model name: a file path (style None), a bundled model, or a style a
    bundled model holds."""
    path = Path(name).expanduser()
    if path.suffix in SUFFIXES or os.sep in name or path.exists():
        if not path.is_file():
            raise ConfigError(f"fast model '{name}' does not exist")
        return path, None
    bundled = BUNDLED / f"{name}.pt"
    if bundled.is_file():
        return bundled, None
    for file in sorted(BUNDLED.glob("*.pt")):
        if name in _cached(file).style_names:
            return file, name
    raise ConfigError(f"no fast model '{name}': give a .pt file or one of {', '.join(bundled_names()) or 'none'}")


def bundled_names() -> list[str]:
    """The names ``--fast-model`` accepts without a path: bundled models and the styles they hold."""
    names: list[str] = []
    for file in sorted(BUNDLED.glob("*.pt")):
        names.append(file.stem)
        names.extend(n for n in _cached(file).style_names if n not in names)
    return names


def check_blend(model: FastModel, blend: list[float] | None) -> torch.Tensor:
    """The blend (one weight per style the model holds, normalised to sum 1) as a tensor."""
    n = len(model.style_names)
    weights = blend if blend is not None else model.blend if model.blend is not None else [1.0] * n
    weights = blend_weights(weights, model.style_names)
    total = sum(weights)
    return torch.tensor([w / total for w in weights], dtype=torch.float32)
