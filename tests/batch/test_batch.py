"""``restyle batch`` on this machine: every content × style becomes one output with a safe, unique
name, its run record and a row in OUT_DIR/batch.csv; a broken input fails alone, with the message
``restyle run`` gives; a rerun skips what is finished and reruns only what an option or input
change affects; manifests (CSV, JSON Lines) give options per output; bad usage exits 2."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restyle import api
from restyle.cli import main
from restyle.config import Config
from restyle.errors import ConfigError
from restyle.io.record import read_run_record, side_paths

FAST = ["--size", "32", "-n", "2", "--precision", "fp32", "--device", "cpu"]


def cli(*argv: object) -> tuple[int, str]:
    """Run ``restyle ARGV`` here; its exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def summary(out: Path) -> list[dict[str, str]]:
    with open(out / "batch.csv", newline="") as f:
        return list(csv.DictReader(f))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def album(inputs, tmp_path_factory) -> Path:
    """photos/: two files named cat.jpg in different folders, a name with spaces and brackets, and
    files a folder search must pass over (text, hidden)."""
    d = tmp_path_factory.mktemp("album") / "photos"
    (d / "2019").mkdir(parents=True)
    (d / "2020").mkdir()
    shutil.copy(inputs["content"], d / "2019" / "cat.jpg")
    shutil.copy(inputs["style2"], d / "2020" / "cat.jpg")
    shutil.copy(inputs["content"], d / "my photo (1).jpg")
    (d / "notes.txt").write_text("not an image")
    shutil.copy(inputs["content"], d / ".hidden.jpg")
    return d


@pytest.fixture(scope="module")
def first_run(album, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    code, err = cli("batch", album, "--styles", inputs["style"], inputs["style2"], "-o", out, *FAST)
    return code, err, out


def test_a_folder_in_two_styles_makes_every_output_with_safe_unique_names(first_run, album):
    code, err, out = first_run
    assert code == 0, err
    names = ["2019-cat__style.png", "2019-cat__style2.png", "2020-cat__style.png", "2020-cat__style2.png",
             "my_photo_1__style.png", "my_photo_1__style2.png"]
    assert sorted(p.name for p in out.glob("*.png")) == names
    for name in names:
        record = read_run_record(out / name)
        assert record["config"]["size"] == 32 and record["config"]["iterations"] == 2
        assert side_paths(out / name)["csv"].is_file()
    assert read_run_record(out / "2020-cat__style2.png")["inputs"]["content"] == str((album / "2020" / "cat.jpg"))
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_the_summary_lists_every_output_and_the_progress_bar_counts_them(first_run, album, inputs):
    code, err, out = first_run
    rows = summary(out)
    assert list(rows[0]) == ["output", "input", "style", "status", "seconds", "final_loss", "error"]
    assert [(Path(r["input"]).name, Path(r["style"]).name, r["status"]) for r in rows[:2]] == [
        ("cat.jpg", "style.jpg", "ran"), ("cat.jpg", "style2.jpg", "ran")]
    assert len(rows) == 6 and all(r["status"] == "ran" and not r["error"] for r in rows)
    assert all(float(r["seconds"]) > 0 and float(r["final_loss"]) > 0 for r in rows)
    assert "6 output(s)" in err and "0 already made, 6 to run" in err
    assert "6/6" in err and "img" in err  # one bar over the whole batch
    assert "6 ran, 0 skipped, 0 failed" in err


def test_a_rerun_skips_every_finished_output(first_run, album, inputs, tmp_path, monkeypatch):
    _, _, done = first_run
    out = tmp_path / "again"
    shutil.copytree(done, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "batch.csv"}
    from restyle.engine import StyleTransfer

    monkeypatch.setattr(StyleTransfer, "run", lambda *a, **k: pytest.fail("a finished output ran again"))
    code, err = cli("batch", album, "--styles", inputs["style"], inputs["style2"], "-o", out, *FAST)
    assert code == 0, err
    assert {r["status"] for r in summary(out)} == {"skipped"}
    assert all(r["seconds"] and r["final_loss"] for r in summary(out))  # the earlier run's
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "batch.csv"} == before


def test_a_broken_input_fails_alone_with_the_message_restyle_run_gives(inputs, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(inputs["content"], photos / "good.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = tmp_path / "out"
    code, err = cli("batch", photos, "--styles", inputs["style"], "-o", out, *FAST)
    assert code == 1
    rows = {r["output"]: r for r in summary(out)}
    assert rows["good__style.png"]["status"] == "ran" and (out / "good__style.png").is_file()
    assert rows["broken__style.png"]["status"] == "failed" and not (out / "broken__style.png").exists()
    run_code, run_err = cli("run", photos / "broken.jpg", inputs["style"], "-o", tmp_path / "x.png", *FAST)
    assert run_code == 2
    assert f"restyle: error: {rows['broken__style.png']['error']}\n" == run_err
    assert f"broken__style.png: {rows['broken__style.png']['error']}" in err


def test_a_changed_option_or_input_reruns_only_the_outputs_it_affects(inputs, tmp_path):
    (tmp_path / "in").mkdir()
    for name, src in [("a.jpg", "content"), ("b.jpg", "style2"), ("s.jpg", "style")]:
        shutil.copy(inputs[src], tmp_path / "in" / name)
    manifest = tmp_path / "in" / "jobs.csv"
    rows = [("a.jpg", "s.jpg", "100"), ("b.jpg", "s.jpg", "100"), ("b.jpg", "a.jpg", "100")]

    def run() -> dict[str, str]:
        manifest.write_text("content,styles,style_weight\n" + "".join(",".join(r) + "\n" for r in rows))
        code, err = cli("batch", "--manifest", manifest, "-o", tmp_path / "out", *FAST)
        assert code == 0, err
        return {r["output"]: r["status"] for r in summary(tmp_path / "out")}

    assert run() == {"a__s.png": "ran", "b__s.png": "ran", "b__a.png": "ran"}
    rows[1] = ("b.jpg", "s.jpg", "300")
    assert run() == {"a__s.png": "skipped", "b__s.png": "ran", "b__a.png": "skipped"}
    assert read_run_record(tmp_path / "out" / "b__s.png")["config"]["style_weight"] == 300
    shutil.copy(inputs["style"], tmp_path / "in" / "a.jpg")  # a.jpg is content of one output, style of another
    assert run() == {"a__s.png": "ran", "b__s.png": "skipped", "b__a.png": "ran"}


def test_a_csv_manifest_gives_each_output_its_own_options_styles_and_name(inputs, tmp_path):
    jobs = tmp_path / "jobs"
    (jobs / "img").mkdir(parents=True)
    for name, src in [("cat.jpg", "content"), ("starry.jpg", "style"), ("scream.jpg", "style2")]:
        shutil.copy(inputs[src], jobs / "img" / name)
    (jobs / "m.csv").write_text(
        "content,styles,output,--size,style-weight,style_blend\n"
        "img/cat.jpg,img/starry.jpg,,40,,\n"
        "img/cat.jpg,img/starry.jpg;img/scream.jpg,blend,,20,\"0.7,0.3\"\n")
    out = tmp_path / "out"
    code, err = cli("batch", "--manifest", jobs / "m.csv", "-o", out, *FAST)
    assert code == 0, err
    assert [r["output"] for r in summary(out)] == ["cat__starry.png", "blend.png"]
    first, blend = read_run_record(out / "cat__starry.png"), read_run_record(out / "blend.png")
    assert first["config"]["size"] == 40 and max(Image.open(out / "cat__starry.png").size) == 40
    assert first["config"]["style_weight"] == Config().style_weight and blend["config"]["style_weight"] == 20
    assert blend["config"]["style_blend"] == [0.7, 0.3] and blend["config"]["size"] == 32
    assert blend["inputs"]["styles"] == [str((jobs / "img" / n).resolve()) for n in ("starry.jpg", "scream.jpg")]
    assert summary(out)[1]["style"] == f"{jobs / 'img' / 'starry.jpg'};{jobs / 'img' / 'scream.jpg'}"


def test_a_jsonl_manifest_row_without_styles_takes_each_style_given(inputs, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"content": str(inputs["content"]), "iterations": 1, "tv_weight": 0.5}) + "\n\n"
                        + json.dumps({"content": str(inputs["style2"]), "styles": [str(inputs["style"])]}) + "\n")
    out = tmp_path / "out"
    code, err = cli("batch", "--manifest", manifest, "--styles", inputs["style"], inputs["style2"], "-o", out,
                    *FAST, "--format", "jpg")
    assert code == 0, err
    names = [r["output"] for r in summary(out)]
    assert names == ["content__style.jpg", "content__style2.jpg", "style2__style.jpg"]
    record = read_run_record(out / "content__style2.jpg")  # the record travels in the JPEG's EXIF
    assert record["config"]["iterations"] == 1 and record["config"]["tv_weight"] == 0.5
    assert read_run_record(out / "style2__style.jpg")["config"]["iterations"] == 2
    code, _ = cli("batch", "--manifest", manifest, "--styles", inputs["style"], inputs["style2"], "-o", out,
                  *FAST, "--format", "jpg")
    assert code == 0 and {r["status"] for r in summary(out)} == {"skipped"}


def test_two_local_processes_make_the_same_outputs_as_one(inputs, tmp_path):
    items = api.plan_batch([inputs["content"], inputs["style2"]], [inputs["style"]], tmp_path / "one",
                           options={"size": 32, "iterations": 2, "precision": "fp32", "device": "cpu"})
    one = api.run_batch(items, tmp_path / "one", threads=1)
    items2 = api.plan_batch([inputs["content"], inputs["style2"]], [inputs["style"]], tmp_path / "two",
                            options={"size": 32, "iterations": 2, "precision": "fp32", "device": "cpu"})
    two = api.run_batch(items2, tmp_path / "two", jobs=2, threads=1)
    assert "2 process(es)" in two.ran_with
    assert [r.status for r in one.results] == [r.status for r in two.results] == ["ran", "ran"]
    for a, b in zip(one.results, two.results):
        assert np.array_equal(pixels(a.item.output), pixels(b.item.output))


def test_an_interrupted_batch_keeps_its_summary_and_a_rerun_finishes_it(inputs, tmp_path):
    opts = {"size": 32, "iterations": 1, "precision": "fp32", "device": "cpu"}
    items = api.plan_batch([inputs["content"]], [inputs["style"], inputs["style2"]], tmp_path, options=opts)

    def stop_after_first(event):
        if type(event).__name__ == "ItemFinished":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.run_batch(items, tmp_path, on_event=stop_after_first)
    assert [r["status"] for r in summary(tmp_path)] == ["ran", "not run"]
    done = api.run_batch(items, tmp_path)
    assert [r.status for r in done.results] == ["skipped", "ran"] and not done.failed


def test_a_dry_run_lists_what_would_run_and_writes_nothing(first_run, album, inputs, tmp_path, capsys):
    _, _, done = first_run
    (album / "2021.jpg").write_bytes(inputs["style"].read_bytes())
    try:
        code = main(["batch", str(album), "--styles", str(inputs["style"]), "-o", str(done), *FAST, "--dry-run"])
        out, err = capsys.readouterr()
    finally:
        (album / "2021.jpg").unlink()
    assert code == 0
    assert out.count("skipped ") == 3 and out.count("to run ") == 1 and "2021__style.png" in out
    assert not (done / "2021__style.png").exists()
    fresh = tmp_path / "fresh"
    assert main(["batch", str(album), "--styles", str(inputs["style"]), "-o", str(fresh), "--dry-run"]) == 0
    assert not fresh.exists()


@pytest.mark.parametrize("argv, message", [
    ([], "give INPUT images and --styles"),
    (["{content}"], "give --styles STYLE... (or --fast-model NAME) for the INPUT images"),
    (["{tmp}/nothing.jpg", "--styles", "{style}"], "input '{tmp}/nothing.jpg': not found"),
    (["{tmp}/*.png", "--styles", "{style}"], "matches no image files"),
    (["{content}", "--styles", "{style}", "--format", "gif"], "--format: unknown format 'gif'"),
    (["{content}", "--styles", "{style}", "--ray-gpus", "1"], "--ray-gpus applies with --ray"),
    (["{content}", "--styles", "{style}", "--ray", "--jobs", "2"], "drop --jobs and --devices"),
    (["{content}", "--styles", "{style}", "--quality", "90"], "--quality applies to JPEG and WebP"),
    (["--manifest", "{tmp}/m.csv"], "{tmp}/m.csv line 3: --style-weight: 'heavy' is not a valid float"),
    (["--manifest", "{tmp}/bad.csv"], "{tmp}/bad.csv line 2: unknown option 'stlye_weight'"),
])
def test_bad_usage_exits_2_with_one_line_before_anything_runs(argv, message, inputs, tmp_path):
    fill = {"tmp": tmp_path, "content": inputs["content"], "style": inputs["style"]}
    (tmp_path / "m.csv").write_text(f"content,styles,style_weight\n{inputs['content']},{inputs['style']},1\n"
                                    f"{inputs['content']},{inputs['style']},heavy\n")
    (tmp_path / "bad.csv").write_text(f"content,styles,stlye_weight\n{inputs['content']},{inputs['style']},1\n")
    code, err = cli("batch", *[a.format(**fill) for a in argv], "-o", tmp_path / "out", *FAST)
    assert code == 2
    assert err.startswith("restyle: error: ") and message.format(**fill) in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "batch.csv").exists()


def test_an_output_over_the_pixel_cap_is_refused_before_any_runs(tmp_path: Path, content: Path, style: Path):
    with pytest.raises(ConfigError, match=r"--size 200000 makes a 200000x\d+ px output"):
        api.plan_batch([content], [style], tmp_path / "out", options={"size": 200000})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
