"""restyle.executors.runs: the style-transfer task of batches and studies. A task that carries its
input files as bytes (for workers on other machines) makes the same output as one that reads
them from disk, errors and notes name the user's paths, the caller writes the output with its own
paths in the run record, and a finished output is recognised (resuming) until its config or an
input file changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restyle.config import Config
from restyle.errors import InputImageError
from restyle.executors import runs
from restyle.io.record import read_run_record, side_paths

TINY = {"size": 32, "iterations": 2, "device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def made(inputs, tmp_path_factory):
    """One output made from disk and the same one made from shipped bytes, and where they are."""
    d = tmp_path_factory.mktemp("runs")
    config = Config.from_options(**TINY)
    on_disk = runs.run_task(runs.make_task(config, str(inputs["content"]), [str(inputs["style"])], ship=False))
    task = runs.make_task(config, str(inputs["content"]), [str(inputs["style"])], ship=True)
    shipped = runs.run_task(task)
    return {"config": config, "task": task, "on_disk": on_disk, "shipped": shipped, "dir": d}


def test_a_task_carrying_its_files_makes_the_same_output_as_one_reading_them(made, inputs):
    assert made["on_disk"]["error"] == "" and made["shipped"]["error"] == ""
    assert set(made["task"]["files"]) == {str(inputs["content"]), str(inputs["style"])}
    assert made["task"]["files"][str(inputs["content"])] == inputs["content"].read_bytes()
    assert np.array_equal(made["on_disk"]["image"], made["shipped"]["image"])
    def losses(outcome):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in outcome["history"]]

    assert losses(made["on_disk"]) == losses(made["shipped"])
    assert made["shipped"]["image"].dtype == np.uint8 and made["shipped"]["image"].shape[2] == 3


def test_the_caller_writes_the_output_with_its_own_paths_in_the_record(made, inputs):
    out = made["dir"] / "out.png"
    written = runs.save_output(made["shipped"], made["config"], out, str(inputs["content"]), [str(inputs["style"])])
    assert set(written) == {"image", "csv"} and side_paths(out)["csv"].is_file()
    record = read_run_record(out)
    assert record["inputs"]["content"] == str(inputs["content"].resolve())
    assert record["inputs"]["styles"] == [str(inputs["style"].resolve())]
    with Image.open(out) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), made["shipped"]["image"])


def test_a_finished_output_is_recognised_until_its_config_or_an_input_changes(made, inputs, tmp_path):
    content = tmp_path / "content.jpg"
    shutil.copy(inputs["content"], content)
    out = tmp_path / "out.png"
    config = made["config"]
    runs.save_output(made["shipped"], config, out, str(content), [str(inputs["style"])])
    done = runs.finished_record(out, config, str(content), [str(inputs["style"])])
    assert done is not None and done["config"]["size"] == 32
    # Where it runs does not change what it computes
    assert runs.finished_record(out, config.replace(device="cuda:1"), str(content), [str(inputs["style"])])
    assert runs.finished_record(out, config.replace(style_weight=7.0), str(content), [str(inputs["style"])]) is None
    assert runs.finished_record(out, config, str(content), [str(inputs["style2"])]) is None
    side_paths(out)["csv"].unlink()  # a half-written output (image without its history) is not finished
    assert runs.finished_record(out, config, str(content), [str(inputs["style"])]) is None
    runs.save_output(made["shipped"], config, out, str(content), [str(inputs["style"])])
    content.write_bytes(inputs["style2"].read_bytes())  # same path, other pixels
    assert runs.finished_record(out, config, str(content), [str(inputs["style"])]) is None


def test_a_broken_shipped_input_fails_with_the_message_a_run_gives_for_the_file(inputs, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    config = Config.from_options(**TINY)
    shipped = runs.run_task(runs.make_task(config, str(broken), [str(inputs["style"])], ship=True))
    on_disk = runs.run_task(runs.make_task(config, str(broken), [str(inputs["style"])], ship=False))
    assert shipped == on_disk == {"error": f"content image '{broken}': not an image file, or one in a format "
                                           "Pillow cannot read, or its header is corrupt"}


def test_an_input_that_cannot_be_read_for_shipping_raises_the_loaders_message(inputs, tmp_path):
    config = Config.from_options(**TINY)
    with pytest.raises(InputImageError, match=r"^style image 1 '.*missing\.jpg': not found$"):
        runs.make_task(config, str(inputs["content"]), [str(tmp_path / "missing.jpg")], ship=True)


def test_shipped_masks_are_used_as_the_users_masks_are(inputs, tmp_path):
    mask = tmp_path / "mask.png"
    w, h = Image.open(inputs["content"]).size
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    Image.fromarray(left).save(mask)
    config = Config.from_options(**TINY, masks=[str(mask)])
    task = runs.make_task(config, str(inputs["content"]), [str(inputs["style"])], ship=True)
    assert str(Path(mask).resolve()) in task["files"]
    shipped, on_disk = runs.run_task(task), runs.run_task({k: v for k, v in task.items() if k != "files"})
    assert shipped["error"] == on_disk["error"] == ""
    assert np.array_equal(shipped["image"], on_disk["image"])


def test_a_shipped_fast_model_runs_where_its_file_is_not(inputs, tmp_path):
    from shared_helpers import tiny_fast_model

    model = tiny_fast_model(tmp_path / "fast.pt")
    config = Config.from_options(size=32, fast_model=str(model))
    task = runs.make_task(config, str(inputs["content"]), [], ship=True)
    assert str(model) in task["files"]
    on_disk = runs.run_task({k: v for k, v in task.items() if k != "files"})
    model.unlink()  # a worker without this file system has only the shipped copy
    shipped = runs.run_task(task)
    assert shipped["error"] == on_disk["error"] == ""
    assert np.array_equal(shipped["image"], on_disk["image"])
