"""Specification of ``restyle.stylize``'s output handling: the output is checked (format,
quality, directory, and that it is none of the run's inputs) before any work starts, and the
quality reaches the writer. The engine is replaced by a stand-in, so nothing is optimised here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from restyle import api
from restyle.api import _run as api_run
from restyle.engine import Result
from restyle.errors import ConfigError, OutputError
from restyle.io.images import to_image
from restyle.io.record import read_run_record
from restyle.methods import MethodBase

KNOWN = b"the user's own file, which restyle must leave alone\n"
ROW = {"iteration": 0, "scale": 16, "total": 1.0, "content": 0.0, "style": 1.0, "tv": 0.0, "photo": 0.0,
       "seconds": 0.0}


class StandInEngine(MethodBase):
    """A trivial :class:`restyle.methods.Method`: counts the runs it was asked for and returns a
    fixed noise image."""

    name = "stand-in"
    built = 0

    def run(self, content: Any, styles: Any, config: Any, **_: Any) -> Result:
        StandInEngine.built += 1
        pixels = torch.rand((1, 3, 48, 64), generator=torch.Generator().manual_seed(1))
        return Result(image=to_image(pixels), history=[ROW], config=config, pixels=pixels)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> type[StandInEngine]:
    StandInEngine.built = 0
    monkeypatch.setattr(api_run, "method_for", lambda config: StandInEngine())
    return StandInEngine


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a photo, a painting and two masks, each with known bytes."""
    monkeypatch.chdir(tmp_path)
    for name in ("photo.jpg", "painting.jpg", "mask.png", "labels.png", "start.png"):
        Path(name).write_bytes(KNOWN)
    return tmp_path


def refused(files: Path, engine: type[StandInEngine], **kwargs: Any) -> str:
    before = sorted(os.listdir(files))
    with pytest.raises(OutputError) as info:
        api.stylize(kwargs.pop("content", "photo.jpg"), kwargs.pop("styles", ["painting.jpg"]), **kwargs)
    assert engine.built == 0  # refused before any work
    assert sorted(os.listdir(files)) == before
    assert all((files / name).read_bytes() == KNOWN for name in before)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_output_that_is_the_content_is_refused_before_the_run(files, engine):
    assert refused(files, engine, output="photo.jpg") == (
        "output 'photo.jpg' is the content image; choose another output path (restyle never overwrites its inputs)")


def test_output_through_a_link_to_the_content_is_refused(files, engine):
    Path("link.png").symlink_to("photo.jpg")
    assert "is the content image 'photo.jpg' (the same file)" in refused(files, engine, output="link.png")
    Path("link.png").unlink()
    os.link("photo.jpg", "hard.jpg")
    assert "is the content image 'photo.jpg' (the same file)" in refused(files, engine, output="hard.jpg")


@pytest.mark.parametrize(("options", "output", "role"), [
    ({}, "painting.jpg", "style image 1"),
    ({"masks": ["mask.png"]}, "mask.png", "mask 1"),
    ({"style_masks": ["mask.png"]}, "mask.png", "style mask 1"),
    ({"label_image": "labels.png"}, "labels.png", "label image"),
    ({"init": "start.png"}, "start.png", "init image"),
])
def test_output_that_is_another_input_is_refused(files, engine, options, output, role):
    message = refused(files, engine, output=output, **options)
    assert message.startswith(f"output '{output}' is the {role}")


def test_side_file_over_an_input_is_refused(files, engine):
    Path("photo.losses.png").write_bytes(KNOWN)
    message = refused(files, engine, styles=["photo.losses.png"], output="photo.webp")
    assert "would write its loss plot to 'photo.losses.png', which is the style image 1" in message


def test_in_memory_inputs_have_no_path_to_protect(files, engine):
    result = api.stylize(Image.new("RGB", (8, 8)), [Image.new("RGB", (8, 8))], output="out.jpg", history=False,
                         plot=False)
    assert engine.built == 1 and set(result.written) == {"image"}
    assert read_run_record("out.jpg")["inputs"]["content"] is None


def test_unknown_extension_is_refused_before_the_run(files, engine):
    assert refused(files, engine, output="out.gif").endswith("use one of .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp")


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"output": "out.png", "quality": 80}, "applies to JPEG and WebP outputs"),
    ({"output": "out.jpg", "quality": 0}, "from 1 to 100"),
    ({"quality": 80}, "needs an output"),
])
def test_misplaced_quality_is_refused_before_the_run(files, engine, kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        api.stylize("photo.jpg", "painting.jpg", **kwargs)
    assert engine.built == 0


def test_quality_reaches_the_writer(files, engine):
    sizes = {}
    for quality in (25, None, 95):
        result = api.stylize("photo.jpg", "painting.jpg", output=f"q{quality}.jpg", quality=quality, history=False,
                             plot=False)
        sizes[quality] = result.written["image"].stat().st_size
        with Image.open(result.written["image"]) as img:
            assert img.format == "JPEG"
    assert sizes[25] < sizes[95] == sizes[None]


def test_every_format_is_written_with_its_record(files, engine):
    for name in ("o.png", "o.jpeg", "o.webp", "o.tiff", "o.bmp"):
        result = api.stylize("photo.jpg", "painting.jpg", output=name, plot=False)
        assert result.written["image"] == (files / name).resolve()
        assert result.written["csv"].name == "o.losses.csv"
        assert read_run_record(name)["inputs"]["content"] == str(files / "photo.jpg")
    assert result.written["record"].name == "o.json"  # the BMP's
