"""Fast models exported to ONNX (restyle export, restyle.train.export) and run by onnxruntime
without torch (restyle.fastonnx, restyle run --fast-model m.onnx)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restyle import fastonnx
from restyle.errors import ConfigError
from restyle.fastonnx import OnnxModel
from restyle.methods.fastmodel import FORMAT_VERSION, load_model
from restyle.train.export import export_onnx
from shared_helpers import run_cli, tiny_fast_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

BLEND = [0.3, 0.7]
#: Measured: the tiny random model's int8 export differs from fp32 by 0.027-0.031 on average
#: (7-8 grey levels) on the 64-px photo and on noise; the bound leaves room for other CPUs' kernels.
INT8_MEAN_ABS = 0.05


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny 2-style model (``pt``) and its fp32 (``fp32``) and int8 (``int8``) exports, shared by
    the module: tests must not modify them."""
    d = tmp_path_factory.mktemp("onnx")
    pt = tiny_fast_model(d / "m.pt")
    return {"pt": pt, "fp32": export_onnx(str(pt), d / "m.onnx"), "int8": export_onnx(str(pt), d / "m8.onnx", int8=True)}


def torch_output(model: Path, x: np.ndarray, blend: list[float]) -> np.ndarray:
    net = load_model(str(model)).net
    with torch.inference_mode():
        return net(torch.from_numpy(x), torch.tensor(blend) / sum(blend)).numpy()


def photo(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 255


def test_the_onnx_model_matches_torch_within_1e_4_at_sides_not_multiples_of_4(models):
    x = np.random.default_rng(0).random((1, 3, 37, 50), dtype=np.float32)
    out = OnnxModel(models["fp32"]).forward(x, BLEND)
    assert out.shape == x.shape
    assert np.abs(out - torch_output(models["pt"], x, BLEND)).max() < 1e-4


def test_the_int8_export_stays_close_to_fp32_and_is_smaller(models, inputs):
    x = photo(inputs["content"])
    fp32, int8 = OnnxModel(models["fp32"]), OnnxModel(models["int8"])
    diff = np.abs(int8.forward(x, BLEND) - fp32.forward(x, BLEND))
    assert diff.mean() < INT8_MEAN_ABS
    assert int8.precision == "int8" and fp32.precision == "fp32"
    assert models["int8"].stat().st_size < models["fp32"].stat().st_size


def test_the_record_travels_in_the_metadata_without_the_paintings(models):
    record = OnnxModel(models["fp32"]).record
    assert record["format"] == "restyle-fast-onnx" and record["version"] == FORMAT_VERSION == fastonnx.FORMAT_VERSION
    assert [s["name"] for s in record["styles"]] == ["style1", "style2"]
    assert all(set(s) == {"name", "sha256"} for s in record["styles"])
    assert record["shape"] == {"width": 4, "blocks": 1, "kernel": 3, "styles": 2}
    assert {"steps", "photos", "restyle"} <= set(record)


def test_stylise_takes_a_path_an_image_or_an_array_and_scales_to_size(models, inputs):
    model = OnnxModel(models["fp32"])
    assert model.styles == ["style1", "style2"]
    with Image.open(inputs["content"]) as img:
        rgb = img.convert("RGB")
    by_path = model.stylise(inputs["content"], size=30)
    assert max(by_path.size) == 30 and by_path.mode == "RGB"
    assert model.stylise(rgb).size == rgb.size
    assert np.array_equal(np.asarray(model.stylise(np.asarray(rgb))), np.asarray(model.stylise(rgb)))


def test_the_blend_defaults_to_equal_weights_and_is_normalised(models):
    model = OnnxModel(models["fp32"])
    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    assert np.array_equal(model.forward(x), model.forward(x, [2.0, 2.0]))
    assert np.allclose(model.weights([1, 3]), [0.25, 0.75])


def test_a_blend_of_the_wrong_length_names_the_counts(models):
    with pytest.raises(ConfigError, match=r"3 weight\(s\).*2 style\(s\) \(style1, style2\)"):
        OnnxModel(models["fp32"]).weights([1, 1, 1])


def test_fastonnx_runs_where_torch_cannot_be_imported(models):
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from restyle.fastonnx import OnnxModel\n"
        f"out = OnnxModel({str(models['int8'])!r}).stylise(np.zeros((21, 30, 3), np.uint8), blend=[1, 0])\n"
        "print(out.size, sorted(m for m in sys.modules if m.startswith('restyle')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # the package's own __init__ (restyle, _lazy, _version), then restyle.errors and the blend rule alone
    assert run.stdout.strip() == ("(30, 21) ['restyle', 'restyle._lazy', 'restyle._version', 'restyle.blend', "
                                  "'restyle.errors', 'restyle.fastonnx']")


def test_a_missing_onnxruntime_or_onnx_names_the_extra(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"pip install restyle\[onnx\]"):
        OnnxModel(models["fp32"])
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConfigError, match=r"needs onnx: pip install restyle\[onnx\]"):
        export_onnx(str(models["pt"]), models["pt"].with_name("never.onnx"))


def test_the_export_command_writes_the_onnx_file_and_nothing_else(models, tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", models["pt"], tmp_path / "out.onnx")
    assert (code, err) == (0, "")
    assert out.strip() == f"wrote {tmp_path / 'out.onnx'}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]
    assert OnnxModel(tmp_path / "out.onnx").styles == ["style1", "style2"]


def stylize(content: Path, model: Path, output: Path, **options: object):
    """``restyle run CONTENT --fast-model MODEL -o OUTPUT`` as the CLI calls it (restyle.api.stylize).
    The CLI's own acceptance of a content image alone is the run command's (tests/cli)."""
    from restyle import api

    return api.stylize(content, [], fast_model=str(model), output=output, **options)


def test_restyle_run_with_an_onnx_model_writes_the_image_torch_would(models, inputs, tmp_path):
    outputs, events = {}, []
    for kind in ("fp32", "pt"):
        out = tmp_path / f"{kind}.png"
        result = stylize(inputs["content"], models[kind], out, style_blend=[1, 3], size=40)
        assert out.is_file() and result.stop_reason == "a fast model: one forward pass"
        outputs[kind] = photo(out)
    stylize(inputs["content"], models["int8"], tmp_path / "int8.png", size=40, on_event=events.append)
    assert [type(e).__name__ for e in events] == ["Started", "Finished"] and events[0].precision == "int8"
    assert max(outputs["fp32"].shape[2:]) == 40
    assert np.abs(outputs["fp32"] - outputs["pt"]).max() <= 1 / 255 + 1e-6


def not_a_model(tmp: Path, models: dict[str, Path]) -> list[object]:
    (tmp / "m.pt").write_text("not a model")
    return ["export", tmp / "m.pt", tmp / "out.onnx"]


def export_to_the_input(tmp: Path, models: dict[str, Path]) -> list[object]:
    return ["export", models["pt"], models["pt"]]


def export_not_to_onnx(tmp: Path, models: dict[str, Path]) -> list[object]:
    return ["export", models["pt"], tmp / "out.pt"]


def export_missing_model(tmp: Path, models: dict[str, Path]) -> list[object]:
    return ["export", tmp / "none.pt", tmp / "out.onnx"]


@pytest.mark.parametrize("case, expected", [
    (not_a_model, "is not a restyle fast model"),
    (export_to_the_input, "is the model it is exported from"),
    (export_not_to_onnx, "must end in .onnx"),
    (export_missing_model, "does not exist"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_bad_export_gets_one_line_and_exit_2(case, expected, models, tmp_path, capsys):
    code, out, err = run_cli(capsys, *case(tmp_path, models))
    assert code == 2
    assert err.startswith("restyle: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["m.pt"])


def not_onnx(tmp: Path, models: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    (tmp / "m.onnx").write_text("not onnx")
    return tmp / "m.onnx", {}


def onnx_without_record(tmp: Path, models: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    import onnx

    proto = onnx.load(str(models["fp32"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp / "plain.onnx"))
    return tmp / "plain.onnx", {}


def other_version(tmp: Path, models: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    import onnx

    proto = onnx.load(str(models["fp32"]))
    record = json.loads(proto.metadata_props[0].value)
    proto.metadata_props[0].value = json.dumps({**record, "version": FORMAT_VERSION + 1})
    onnx.save(proto, str(tmp / "v2.onnx"))
    return tmp / "v2.onnx", {}


def missing_onnx(tmp: Path, models: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    return tmp / "none.onnx", {}


def wrong_blend_length(tmp: Path, models: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    return models["fp32"], {"style_blend": [1, 1, 1]}


def refine_with_onnx(tmp: Path, models: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    return models["fp32"], {"refine": 5}


@pytest.mark.parametrize("case, expected", [
    (not_onnx, "is not an ONNX model"),
    (onnx_without_record, "is not a restyle fast model (no restyle record"),
    (other_version, f"is of model format {FORMAT_VERSION + 1}"),
    (missing_onnx, "does not exist"),
    (wrong_blend_length, "3 weight(s) but the ONNX model holds 2 style(s)"),
    (refine_with_onnx, "--refine needs the paintings"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_bad_onnx_run_is_a_one_line_config_error_and_writes_nothing(case, expected, models, inputs, tmp_path):
    model, options = case(tmp_path, models)
    with pytest.raises(ConfigError) as err:
        stylize(inputs["content"], model, tmp_path / "out.png", size=32, **options)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out.png").exists()
