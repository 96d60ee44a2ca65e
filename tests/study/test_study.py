"""restyle.study: the grid, a tiny end-to-end study, resuming, the seed-table preset, the CLI,
the report's escaping, executors plugged into a study."""

from __future__ import annotations

import csv
import html as htmllib
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch

from restyle import metrics
from restyle.cli import main
from restyle.config import Config
from restyle.engine import StyleTransfer
from restyle.errors import ConfigError
from restyle.io.record import read_run_record, side_paths
from restyle.spec import LAYER_SETS
from restyle.study import build_grid, grid, parse_sweep, preset_grid, report, runner
from restyle.study.executors import Executor, InProcessExecutor
from restyle.study.grid import CellResult, example
from restyle.weights import vgg16_available

CHELSEA, STARRY, SCREAM = example("chelsea.jpg"), example("starry_night.jpg"), example("the_scream.jpg")
TINY = {"size": 32, "iterations": 2, "device": "cpu", "precision": "fp32"}
#: These tests' studies score at 64 px (the metrics themselves are tested in test_metrics.py).
SMALL = metrics.Evaluator(size=64)



def scalars(values: dict) -> dict:
    """The scalar metrics (the study also keeps the per-layer style distances)."""
    return {k: v for k, v in values.items() if k != "style_by_layer"}

def run_study(cells, out_dir, **kwargs):
    return runner.run_study(cells, out_dir, evaluator=SMALL, **kwargs)


@pytest.fixture
def engine_calls(monkeypatch):
    calls: list[Config] = []
    real = StyleTransfer.run

    def counting(self, *args, **kwargs):
        calls.append(self.config)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StyleTransfer, "run", counting)
    return calls


def tiny_cells(sweep=("style_weight=10,100",), **options):
    return build_grid([CHELSEA], [STARRY], ["gatys", "block1_conv1,block3_conv2:0.5"], list(sweep), {**TINY, **options})


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return out, run_study(tiny_cells(), out)


def html_refs(html: str) -> list[str]:
    return [unquote(r) for r in re.findall(r'(?:src|href)="([^"]*)"', html)]


# ---- sweeps and the grid ------------------------------------------------------------------


def test_sweep_values_are_parsed_by_the_config_field_type():
    assert parse_sweep("style_weight=10,1e3") == ("style_weight", [10.0, 1000.0])
    assert parse_sweep("iterations=5,10") == ("iterations", [5, 10])
    assert parse_sweep("size=64,none") == ("size", [64, None])
    assert parse_sweep("model=vgg19,vgg16") == ("model", ["vgg19", "vgg16"])
    assert parse_sweep("line-search=true,0") == ("line_search", [True, False])
    assert parse_sweep("lr=none,0.5") == ("lr", [None, 0.5])
    assert parse_sweep("style_blend=0.5,0.5;1,0") == ("style_blend", [[0.5, 0.5], [1.0, 0.0]])
    if "scales" in Config.__dataclass_fields__:  # list[int] fields, when the config has one
        assert parse_sweep("scales=32,64;48") == ("scales", [[32, 64], [48]])
    key, values = parse_sweep("content_layers=block4_conv2;block2_conv2:2,block3_conv1")
    assert key == "content_layers" and values == [{"block4_conv2": 1.0}, {"block2_conv2": 2.0, "block3_conv1": 1.0}]


@pytest.mark.parametrize("text, words", [
    ("colour=1,2", "unknown option 'colour'"),
    ("iterations=1.5", "'1.5' is not a valid int"),
    ("style_weight=lots", "'lots' is not a valid float"),
    ("fallback_vgg19=maybe", "not a valid bool"),
    ("style_weight", "KEY=V1,V2"),
    ("style_layers=gatys", "--layer-sets"),
])
def test_bad_sweeps_are_config_errors(text, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_sweep(text)


def test_grid_is_the_product_with_validated_configs():
    cells = build_grid([CHELSEA], [STARRY, SCREAM], ["gatys", "seed"], ["style_weight=10,100", "pooling=max,avg"], TINY)
    assert len(cells) == 1 * 2 * 2 * 2 * 2
    assert len({c.name for c in cells}) == len(cells)
    first = cells[0]
    assert first.name == "chelsea__starry_night__gatys__style_weight-10__pooling-max"
    assert first.config.style_layers == {n: 1.0 for n in LAYER_SETS["gatys"]}
    assert (first.config.size, first.config.iterations) == (32, 2)
    assert {(c.config.style_weight, c.config.pooling) for c in cells} == {(10, "max"), (10, "avg"), (100, "max"), (100, "avg")}
    assert {c.layer_set for c in cells} == {"gatys", "seed"}
    with pytest.raises(ConfigError, match="unknown layer"):
        build_grid([CHELSEA], [STARRY], ["block9_conv1"], None, TINY)
    with pytest.raises(ConfigError, match="'gatys' and 'seed-conv1' are the same layers"):
        build_grid([CHELSEA], [STARRY], ["seed-conv1", "gatys"], None, TINY)
    with pytest.raises(ConfigError, match="not both"):
        build_grid([CHELSEA], [STARRY], ["gatys"], None, {**TINY, "style_layers": "seed"})


def test_seed_table_preset_grid():
    cells = preset_grid("seed-table")
    assert len(cells) == 2 * 3 * 3
    assert {Path(c.content).name for c in cells} == {"chelsea.jpg", "astronaut.jpg"}
    styles = {Path(c.style).stem for c in cells}
    assert {"starry_night", "the_scream"} <= styles
    assert any(grid.EXAMPLE_KINDS[s] == "photograph" for s in styles)
    assert {c.layer_set for c in cells} == {"seed", "seed-conv1", "seed-mixed"}  # seed-conv1 == gatys
    for c in cells:
        assert c.config.model == "vgg16" and c.config.fallback_vgg19
        assert c.config.content_layers == {"block2_conv2": 1.0}
        assert c.config.size == 192
        assert c.config.style_layers == {n: 1.0 for n in LAYER_SETS[c.layer_set]}
        assert Path(c.content).is_file() and Path(c.style).is_file()
    # The user's options override the preset's defaults.
    small = preset_grid("seed-table", {"size": 64, "iterations": 3, "device": "cpu"})
    assert {(c.config.size, c.config.iterations, c.config.device) for c in small} == {(64, 3, "cpu")}


# ---- a tiny study end to end --------------------------------------------------------------


def test_tiny_study_writes_every_artefact(tiny_study):
    out, summary = tiny_study
    assert [r.status for r in summary.results] == ["ran"] * 4
    for r in summary.results:
        record = read_run_record(r.png)
        assert record["config"]["style_weight"] == r.cell.config.style_weight
        assert side_paths(r.png)["csv"].is_file()
        assert set(r.metrics) == {*metrics.METRIC_NAMES, "style_by_layer"}  # and the per-layer breakdown
        assert set(r.metrics["style_by_layer"]) == set(metrics.EVAL_STYLE_LAYERS)
    for name in ("contact_sheet.png", "metrics.csv", "index.html", "curves/chelsea__starry_night.png"):
        assert (out / name).is_file(), name
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {r["cell"] for r in rows} == {r.cell.name for r in summary.results}
    for row in rows:
        assert row["layer_set"] in ("gatys", "b1c1-b3c2x0.5") and row["style_weight"] in ("10", "100")
        assert 0 < float(row["ssim"]) <= 1 and float(row["style_distance"]) > 0 and float(row["seconds"]) >= 0
        assert row["iterations_done"] == "2" and row["status"] == "ran"
        assert (out / row["output"]).is_file()


def test_index_html_opens_offline(tiny_study):
    out, summary = tiny_study
    html = (out / "index.html").read_text()
    refs = html_refs(html)
    assert "contact_sheet.png" in refs and "metrics.csv" in refs
    assert all(f"cells/{r.cell.name}.png" in refs for r in summary.results)
    for ref in refs:
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (out / ref).is_file(), ref
    assert "<script" not in html
    for name in metrics.METRIC_NAMES:
        assert name in html
    assert "images resized to longest side 64 px" in html  # the study's evaluator, not the default


def test_labels_notes_and_errors_are_escaped_in_index_html(tmp_path):
    cells = build_grid([CHELSEA], [STARRY], ["gatys", "seed"], None, TINY)
    cells[0].content_label = cells[1].content_label = '<script>alert("cat")</script>'
    png = tmp_path / "cells" / f"{cells[0].name}.png"
    png.parent.mkdir()
    shutil.copy(CHELSEA, png)
    scores = dict.fromkeys(metrics.METRIC_NAMES, 0.5)
    results = [CellResult(cells[0], "ran", png, metrics=scores, model_used="vgg19"),
               CellResult(cells[1], "failed", error="<script>boom()</script> & more")]
    report.write_report(tmp_path, results, notes=["a <script>note</script>"], title="<script>t</script>",
                        command="restyle study '<script>'")
    html = (tmp_path / "index.html").read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;cat&#34;)&lt;/script&gt;" in html
    assert "&lt;script&gt;boom()&lt;/script&gt; &amp; more" in html
    text = htmllib.unescape(html)
    for shown in ('<script>alert("cat")</script>', "a <script>note</script>", "<script>t</script>",
                  "restyle study '<script>'"):
        assert shown in text


def test_rerun_skips_finished_cells_and_reruns_changed_ones(tiny_study, tmp_path, engine_calls):
    out = tmp_path / "again"
    shutil.copytree(tiny_study[0], out)
    before = {r.cell.name: r.metrics for r in tiny_study[1].results}
    summary = run_study(tiny_cells(), out)
    assert engine_calls == []
    assert [r.status for r in summary.results] == ["skipped"] * 4
    for r in summary.results:  # metrics re-read from the PNGs, losses from the CSVs
        assert scalars(r.metrics) == pytest.approx(scalars(before[r.cell.name]))
        assert r.metrics["style_by_layer"] == pytest.approx(before[r.cell.name]["style_by_layer"])
        assert r.history and r.history[-1]["iteration"] == 2
    with open(out / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4

    summary = run_study(tiny_cells(sweep=("style_weight=10,30",)), out)  # two new cells
    assert sorted(c.style_weight for c in engine_calls) == [30, 30]
    assert sorted(r.status for r in summary.results) == ["ran", "ran", "skipped", "skipped"]

    engine_calls.clear()
    run_study(tiny_cells(sweep=("style_weight=10",), iterations=1), out)  # same names, other config
    assert len(engine_calls) == 2

    engine_calls.clear()
    run_study(tiny_cells(sweep=("style_weight=10",), iterations=1), out, force=True)
    assert len(engine_calls) == 2


def test_a_failed_cell_is_reported_and_the_others_run(tmp_path, capsys):
    code = main(["study", CHELSEA, "--styles", STARRY, "--sweep", f"init=content,{tmp_path / 'missing.png'}",
                 "--size", "32", "--iterations", "1", "--device", "cpu", "-o", str(tmp_path / "s"), "-q"])
    assert code == 1
    with open(tmp_path / "s" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ran", "failed"]
    assert "not found" in rows[1]["error"]
    assert "failed" in (tmp_path / "s" / "index.html").read_text()


# ---- the CLI ------------------------------------------------------------------------------


def test_seed_table_end_to_end_smoke(tmp_path):
    out = tmp_path / "seed"
    code = main(["study", "--preset", "seed-table", CHELSEA, "--layer-sets", "seed", "seed-conv1",
                 "--styles", STARRY, example("coffee.jpg"), "--size", "32", "--iterations", "1", "-o", str(out), "-q"])
    assert code == 0
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {r["model"] for r in rows} == {"vgg16"}
    assert {r["content_layers"] for r in rows} == {"block2_conv2"}
    assert {r["style_kind"] for r in rows} == {"painting", "photograph"}
    html = (out / "index.html").read_text()
    assert "seed-table" in html
    assert "Layer set seed-conv1 is the same as gatys" in html
    if not vgg16_available():
        assert {r["model_used"] for r in rows} == {"vgg19"}
        assert "VGG16 weights unavailable: the seed's layer names ran on the embedded VGG19" in htmllib.unescape(html)


def test_cli_errors_are_one_line(tmp_path, capsys):
    base = ["study", CHELSEA, "--styles", STARRY, "-o", str(tmp_path / "x")]
    assert main([*base, "--sweep", "colour=1"]) == 2
    assert "unknown option 'colour'" in capsys.readouterr().err
    assert main(["study", "--styles", STARRY, "-o", str(tmp_path / "x")]) == 2
    assert "CONTENT" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--devices", "cuda:0,cuda:1"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_jobs_run_cells_in_spawned_processes(tmp_path, monkeypatch):
    cells = build_grid([CHELSEA], [STARRY], ["gatys"], ["style_weight=10,100"], {**TINY, "iterations": 1})
    summary = run_study(cells, tmp_path / "par", jobs=2)
    assert [r.status for r in summary.results] == ["ran", "ran"]
    # Same seed, same config: the parallel result equals a serial one (same threads per process),
    # and the workers scored with the study's evaluator (64 px), as this process does.
    again = run_study(cells[:1], tmp_path / "ser", force=True)
    assert again.results[0].final["total"] == pytest.approx(summary.results[0].final["total"], rel=1e-3)
    assert scalars(again.results[0].metrics) == pytest.approx(scalars(summary.results[0].metrics), rel=1e-3)


def test_devices_are_dealt_round_robin(tmp_path, monkeypatch):
    seen: list[str] = []

    def fake_run_cell(task):
        seen.append(task["config"]["device"])
        return {"error": "not run in this test"}

    monkeypatch.setattr(runner, "_check_devices", lambda devices: None)
    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    cells = build_grid([CHELSEA], [STARRY, SCREAM], ["gatys", "seed"], None, TINY)
    summary = run_study(cells, tmp_path / "dev", devices=["cuda:0", "cuda:1"])
    assert seen == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert all(r.status == "failed" for r in summary.results)


def test_a_study_runs_on_any_executor(tmp_path, monkeypatch):
    class Recording:
        """A backend of its own: runs the tasks in this process and remembers them."""

        def __init__(self):
            self.tasks = []

        def map_unordered(self, fn, tasks):
            for key, outcome in InProcessExecutor().map_unordered(fn, tasks):
                self.tasks.append(key)
                yield key, outcome

        def describe(self):
            return "a recording executor"

    monkeypatch.setattr(runner, "run_cell", lambda task: {"error": f"not run here ({task['eval_size']} px)"})
    cells = build_grid([CHELSEA], [STARRY, SCREAM], ["gatys"], None, TINY)
    executor = Recording()
    assert isinstance(executor, Executor)
    summary = run_study(cells, tmp_path / "any", executor=executor)
    assert sorted(executor.tasks) == [0, 1]
    assert [r.error for r in summary.results] == ["not run here (64 px)"] * 2
    assert any("Ran with a recording executor" in n for n in summary.notes)


def test_a_cell_over_the_pixel_cap_is_refused_before_any_cell_runs(tmp_path, content, style):
    from restyle import api
    from restyle.errors import ConfigError

    cells = api.build_grid([str(content)], [str(style)], ["gatys"], options={"size": 200000})
    with pytest.raises(ConfigError, match=r"--size 200000 makes a 200000x\d+ px output"):
        api.run_study(cells, tmp_path / "study")
    assert not (tmp_path / "study" / "cells").exists() or not any((tmp_path / "study" / "cells").iterdir())
