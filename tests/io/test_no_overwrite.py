"""Specification of the rule that no output overwrites an input: the output image, and the
files written beside it (loss history and plot, sidecar record, snapshots), are each refused
when they are one of the run's inputs (content, styles, masks, style masks, label image, init
image), by path or as the same file through a symbolic or hard link; refused with one line,
before any work, with nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from restyle.cli import main
from restyle.config import Config
from restyle.errors import ConfigError, OutputError
from restyle.io.files import same_file
from restyle.io.record import check_output
from restyle.methods import run_inputs

FAST = ["--size", "32", "-n", "2", "--precision", "fp32", "--device", "cpu", "-q"]
KNOWN = b"the user's own file, which restyle must leave alone\n"


def one_line(err: str) -> bool:
    return err.startswith("restyle: error: ") and err.count("\n") == 1 and "Traceback" not in err

# ---- never over an input ----------------------------------------------------------------------


def test_same_file_sees_through_links(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(KNOWN)
    (tmp_path / "soft.jpg").symlink_to(photo)
    os.link(photo, tmp_path / "hard.jpg")
    assert same_file(photo, tmp_path / "soft.jpg") and same_file(photo, tmp_path / "hard.jpg")
    assert same_file(tmp_path / "new.jpg", tmp_path / "." / "new.jpg")  # neither exists yet
    assert not same_file(tmp_path / "new.jpg", photo)


def test_run_inputs_lists_every_input_file(tmp_path):
    config = Config(masks=["m1.png", "m2.png"], style_masks=["none", "sm2.png"], init="start.png")
    inputs = run_inputs("c.jpg", [Path("s1.jpg"), Image.new("RGB", (2, 2))], config)
    assert [role for role, _ in inputs] == ["content image", "style image 1", "init image", "mask 1", "mask 2",
                                            "style mask 2"]
    assert inputs[0] == ("content image", "c.jpg") and inputs[2][1].endswith("start.png")
    labelled = run_inputs(Image.new("RGB", (2, 2)), ["s.jpg"], Config(label_image="labels.png", init="noise"))
    assert [role for role, _ in labelled] == ["style image 1", "label image"]


@pytest.mark.parametrize(("output", "role"), [
    ("photo.jpg", "content image"),
    ("soft.png", "content image 'photo.jpg' (the same file)"),
    ("hard.png", "content image 'photo.jpg' (the same file)"),
    ("sub/../photo.jpg", "content image 'photo.jpg' (the same file)"),
    ("painting.png", "style image 1"),
])
def test_output_that_is_an_input_is_refused(tmp_path, monkeypatch, output, role):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    Path("photo.jpg").write_bytes(KNOWN)
    Path("painting.png").write_bytes(KNOWN)
    Path("soft.png").symlink_to("photo.jpg")
    os.link("photo.jpg", "hard.png")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputError) as info:
        check_output(output, [("content image", "photo.jpg"), ("style image 1", "painting.png")])
    assert str(info.value) == (f"output '{output}' is the {role}; choose another output path "
                               "(restyle never overwrites its inputs)")
    assert sorted(os.listdir(tmp_path)) == before
    assert Path("photo.jpg").read_bytes() == KNOWN


@pytest.mark.parametrize(("input_name", "flags", "what"), [
    ("out.losses.csv", {}, "loss history"),
    ("out.losses.png", {}, "loss plot"),
    ("out.json", {"history": False, "plot": False}, "run record"),
])
def test_side_file_that_is_an_input_is_refused(tmp_path, input_name, flags, what):
    (tmp_path / input_name).write_bytes(KNOWN)
    with pytest.raises(OutputError, match=f"would write its {what} to '.*{input_name}', which is the mask 1"):
        check_output(tmp_path / "out.jpg", [("mask 1", str(tmp_path / input_name))], **flags)


def test_side_files_not_written_are_not_checked(tmp_path):
    inputs = [("style image 1", str(tmp_path / "out.losses.png")), ("mask 1", str(tmp_path / "out.losses.csv"))]
    assert check_output(tmp_path / "out.png", inputs, history=False, plot=False) == (tmp_path / "out.png").resolve()


def test_snapshot_over_an_input_is_refused(tmp_path):
    inputs = [("init image", str(tmp_path / "out.iter0010.png"))]
    check_output(tmp_path / "out.webp", inputs)  # no --save-every: no snapshots
    with pytest.raises(OutputError, match="would write a snapshot \\(--save-every\\) over the init image"):
        check_output(tmp_path / "out.webp", inputs, save_every=10)
    check_output(tmp_path / "out.webp", [("init image", str(tmp_path / "other" / "out.iter0010.png"))],
                 save_every=10)  # the same name elsewhere is no snapshot


def test_snapshot_through_a_link_to_an_input_is_refused(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(KNOWN)
    (tmp_path / "out.iter0005.png").symlink_to(tmp_path / "photo.jpg")
    with pytest.raises(OutputError, match="snapshot .* over the content image"):
        check_output(tmp_path / "out.png", [("content image", str(tmp_path / "photo.jpg"))], save_every=5)


def test_check_output_checks_the_extension_and_quality_first(tmp_path):
    with pytest.raises(OutputError, match="use one of"):
        check_output(tmp_path / "missing-dir" / "out.gif", [])
    with pytest.raises(ConfigError, match="--quality"):
        check_output(tmp_path / "out.png", [], quality=80)


# ---- the command line -------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_output_naming_the_content_photo_is_refused_and_the_photo_kept(tmp_path, content, style, capsys):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(content.read_bytes())
    before = photo.read_bytes()
    code, out, err = run_cli(capsys, "run", photo, style, "-o", photo, *FAST)
    assert code == 2 and out == "" and one_line(err), err
    assert err == (f"restyle: error: output '{photo}' is the content image; choose another output path "
                   "(restyle never overwrites its inputs)\n")
    assert photo.read_bytes() == before
    assert os.listdir(tmp_path) == ["photo.jpg"]


def test_output_naming_a_style_or_mask_is_refused(tmp_path, content, style, capsys):
    mask = tmp_path / "mask.png"
    Image.new("L", (8, 8), 255).save(mask)
    saved = mask.read_bytes(), style.read_bytes()
    code, _, err = run_cli(capsys, "run", content, style, "-o", style, *FAST)
    assert code == 2 and one_line(err) and "is the style image 1" in err
    code, _, err = run_cli(capsys, "run", content, style, "--mask", mask, "-o", mask, *FAST)
    assert code == 2 and one_line(err) and "is the mask 1" in err
    assert (mask.read_bytes(), style.read_bytes()) == saved
    assert os.listdir(tmp_path) == ["mask.png"]


def test_unknown_extension_on_the_command_line(tmp_path, content, style, capsys):
    for name in ("out.gif", "out"):
        code, _, err = run_cli(capsys, "run", content, style, "-o", tmp_path / name, *FAST)
        assert code == 2 and one_line(err) and "use one of .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp" in err
    assert os.listdir(tmp_path) == []
