"""restyle.batch.inputs: which files a batch takes (folders recursively, image files only, never
its own outputs; globs; files as given), how its outputs are named (safe, unique, stable), and
how a manifest's rows become outputs and options. Nothing runs here."""

from __future__ import annotations

from pathlib import Path

import pytest

from restyle.batch.inputs import Source, expand, labels, plan, read_manifest, safe
from restyle.errors import ConfigError


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"pixels")
    return str(path)


def test_a_folder_gives_its_image_files_recursively_and_not_the_output_folder_inside_it(tmp_path):
    photos = tmp_path / "photos"
    for name in ["b.JPG", "a.png", "sub/c.webp", "sub/deeper/d.tif", "notes.txt", ".hidden.jpg", ".cache/e.jpg",
                 "out/a__s.png"]:
        touch(photos / name)
    found = expand([str(photos)], exclude=photos / "out")
    assert [Path(s.path).relative_to(photos).as_posix() for s in found] == [
        "a.png", "b.JPG", "sub/c.webp", "sub/deeper/d.tif"]
    assert [s.label for s in found] == ["a", "b", "sub-c", "sub-deeper-d"]


def test_files_are_taken_as_given_globs_match_image_files_and_each_file_comes_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["x/1.jpg", "x/2.jpg", "x/readme.md", "y/z/3.png", "odd.data"]:
        touch(tmp_path / name)
    found = expand(["odd.data", "x/*", "**/*.png", "x/1.jpg"])
    assert [s.path for s in found] == ["odd.data", "x/1.jpg", "x/2.jpg", "y/z/3.png"]


@pytest.mark.parametrize("spec, message", [
    ("missing.jpg", "input 'missing.jpg': not found"),
    ("*.gif", "input '*.gif' matches no image files"),
    ("empty", "input folder 'empty' holds no image files"),
])
def test_an_input_that_names_nothing_is_a_usage_error(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        expand([spec])


def test_names_are_made_safe_and_short():
    assert safe("my photo (1)") == "my_photo_1"
    assert safe("../../etc/passwd") == "etc_passwd"
    assert safe("café.été") == "café.été"  # letters of any script stay
    assert safe("...") == "image"
    long = safe("x" * 200)
    assert len(long) == 60 and long != safe("x" * 199)


def test_clashing_names_take_their_folders_then_their_extensions_then_a_number(tmp_path):
    a, b = touch(tmp_path / "a" / "cat.jpg"), touch(tmp_path / "b" / "Cat.jpg")
    png = touch(tmp_path / "a" / "cat.png")
    names = labels([Source(a, "cat"), Source(b, "Cat"), Source(png, "cat")])
    assert names == {a: "a-cat.jpg", b: "b-Cat.jpg", png: "a-cat.png"}
    same = labels([Source(a, "x"), Source(b, "x"), Source(touch(tmp_path / "c" / "x"), "x")])
    assert sorted(same.values()) == ["a-cat", "b-Cat", "c-x"]


def test_outputs_are_named_content_then_style_and_never_twice(tmp_path):
    for name in ["a/cat.jpg", "b/cat.jpg", "starry.jpg", "scream.png"]:
        touch(tmp_path / name)
    items = plan([str(tmp_path / "a" / "cat.jpg"), str(tmp_path / "b" / "cat.jpg")],
                 [str(tmp_path / "starry.jpg"), str(tmp_path / "scream.png")], tmp_path / "out", fmt="webp")
    assert [i.name for i in items] == ["a-cat__starry.webp", "a-cat__scream.webp", "b-cat__starry.webp",
                                       "b-cat__scream.webp"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("content,styles\ncat.jpg,starry.jpg\ncat.jpg,starry.jpg\n")
    touch(tmp_path / "cat.jpg")
    twice = plan([], [], tmp_path / "out", manifest=manifest)
    assert [i.name for i in twice] == ["cat__starry.png", "cat__starry-2.png"]


def test_a_manifests_paths_are_relative_to_its_folder_and_its_options_parsed_by_field(tmp_path):
    jobs = tmp_path / "jobs"
    touch(jobs / "mask.png")
    (jobs / "m.jsonl").write_text(
        '{"content": "in/a.jpg", "styles": "s1.jpg; s2.jpg", "scales": [150, 300], "content_layers": '
        '{"block2_conv2": 2}, "--mask": ["mask.png", "mask.png"], "init": "noise", "line_search": true, "preset": '
        '"seed", "n": 7}\n')
    (row,) = read_manifest(jobs / "m.jsonl")
    assert row.content.path == str(jobs / "in" / "a.jpg")
    assert [s.path for s in row.styles] == [str(jobs / "s1.jpg"), str(jobs / "s2.jpg")]
    assert row.options == {"scales": [150, 300], "content_layers": {"block2_conv2": 2.0},
                           "masks": [str(jobs / "mask.png")] * 2, "init": "noise", "line_search": True,
                           "iterations": 7}
    assert row.preset == "seed"
    (item,) = plan([], [], tmp_path / "out", manifest=jobs / "m.jsonl", options={"size": 64, "tv_weight": 3})
    assert item.config.scales == [150, 300] and item.config.iterations == 7 and item.config.tv_weight == 3
    assert item.config.preset == "seed" and item.config.masks == [str(jobs / "mask.png")] * 2
    assert item.source == f"{jobs / 'm.jsonl'} line 1"


@pytest.mark.parametrize("text, message", [
    ("content,styles,size\na.jpg,s.jpg,big\n", r"m.csv line 2: --size: 'big' is not a valid"),
    ("content,styles\na.jpg,s.jpg,extra\n", r"m.csv line 2: more cells than the header has columns"),
    ("styles\ns.jpg\n", r"m.csv line 2: no content image"),
    ("content,styles,output\na.jpg,s.jpg,sub/x.png\n", r"must be a file name in the output folder"),
    ("content,styles,output\na.jpg,s.jpg,x\nb.jpg,s.jpg,x.png\n", r"line 3: output 'x.png' is named twice"),
    ("content,styles,style_blend\na.jpg,s.jpg,\"0.5,0.5\"\n", r"line 2: --style-blend has 2 weight\(s\) for 1"),
    ("content,styles\n", r"has no rows"),
])
def test_a_bad_manifest_is_a_usage_error_naming_its_line(text, message, tmp_path):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ConfigError, match=message):
        plan([], [], tmp_path / "out", manifest=tmp_path / "m.csv")
