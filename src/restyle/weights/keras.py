"""Keras VGG weights files (``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``, ...), via h5py.

Keras' VGG weights are the original Caffe ones ("caffe" input convention). Each conv is an
HDF5 group named after the layer (``block1_conv1``), at the top level or under
``model_weights`` (a whole saved model) or ``layers`` (Keras 3). Its ``weight_names`` attribute,
when present, lists its datasets: ``block1_conv1_W_1:0`` / ``block1_conv1_b_1:0`` (fchollet's
releases) or ``block1_conv1/kernel:0`` / ``block1_conv1/bias:0`` (later Keras 2). Without it,
the group's one 4-D dataset is the kernel and its one 1-D dataset the bias. Kernels are stored
TensorFlow-style as [kh, kw, in, out] and transposed to torch's [out, in, kh, kw].
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from restyle.errors import WeightsError
from restyle.spec import CAFFE
from restyle.weights.base import Conv, VGGWeights, corrupt, validated

if TYPE_CHECKING:
    import h5py

_CONV_NAME = re.compile(r"block\d+_conv\d+")
_ROOTS = ("model_weights", "layers")  # where groups may sit besides the top level


def filename(arch: str) -> str:
    """``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` (as Keras names its download)."""
    return f"{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def cached_path(arch: str) -> Path:
    """Where Keras caches the file for ``arch``: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home).expanduser() if keras_home else Path.home() / ".keras"
    return base / "models" / filename(arch)


def load(arch: str, path: Path) -> VGGWeights:
    """Read the conv layers of a Keras VGG weights file."""
    try:
        import h5py  # only needed for this format
    except ImportError as exc:
        raise WeightsError(f"reading the Keras weights file '{path}' needs h5py: pip install h5py") from exc
    try:
        with h5py.File(path, "r") as f:
            convs = {name: _read_conv(group, path) for name, group in _conv_groups(f).items()}
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:  # h5py's errors for damaged files
        raise corrupt(path, exc) from exc
    return validated(arch, convs, convention=CAFFE, source=str(path), path=path)


def _conv_groups(f: h5py.File) -> dict[str, h5py.Group]:
    """The file's ``blockN_convM`` groups, by name."""
    import h5py

    roots = [f] + [f[name] for name in _ROOTS if isinstance(f.get(name), h5py.Group)]
    groups: dict[str, h5py.Group] = {}
    for root in roots:
        for name, obj in root.items():
            if _CONV_NAME.fullmatch(name) and isinstance(obj, h5py.Group):
                groups.setdefault(name, obj)
    return groups


def _read_conv(group: h5py.Group, path: Path) -> Conv:
    """``(W [out, in, kh, kw], b)`` from a layer group."""
    import h5py

    names = group.attrs.get("weight_names")
    if names is not None:
        datasets = [group[n.decode() if isinstance(n, bytes) else str(n)] for n in names]
    else:
        datasets = []

        def collect(_: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                datasets.append(obj)

        group.visititems(collect)
    kernels = [d for d in datasets if d.ndim == 4]
    biases = [d for d in datasets if d.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise WeightsError(
            f"weights file '{path}': layer {group.name} has {len(kernels)} 4-D kernels and "
            f"{len(biases)} 1-D biases, expected one of each"
        )
    kernel = np.asarray(kernels[0][()]).transpose(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]
    return torch.from_numpy(np.ascontiguousarray(kernel)), torch.from_numpy(np.asarray(biases[0][()]))
