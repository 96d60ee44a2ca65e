"""Training fast models: the loss falls, files round-trip, resume continues, bad input is one line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import restyle
from restyle.cli import main
from restyle.errors import ConfigError
from restyle.methods.fastmodel import read_model

TINY = dict(width=4, blocks=1, kernel=3, batch=2, size=32, style_scale=1.0, held_out=1)


def train(styles, photos, out, steps, **kw):
    return restyle.train_fast_model(styles, photos, out, steps=steps, **{**TINY, **kw})


@pytest.mark.numeric
def test_a_few_training_steps_lower_the_loss(photos, style, tmp_path):
    losses = []
    train([style], photos, tmp_path / "m.pt", 40, lr=1e-2, every=0,
          on_event=lambda e: losses.append(e.losses["total"]) if isinstance(e, restyle.TrainProgress) else None)
    assert len(losses) == 40
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.7 * first, (first, last)


def test_the_model_file_carries_its_record_and_reloads_to_the_same_network(photos, style, inputs, tmp_path):
    out = tmp_path / "two.pt"
    model = train([style, inputs["style2"]], photos, out, 3, every=0, strength=0.6)
    again = read_model(out)
    assert again.style_names == [Path(style).stem, Path(inputs["style2"]).stem]
    assert again.record["styles"][0]["sha256"] == hashlib.sha256(Path(style).read_bytes()).hexdigest()
    assert again.record["steps"] == 3 and again.record["photos"] == 5  # six readable, one held out
    assert again.record["config"]["strength"] == 0.6 and again.record["shape"]["styles"] == 2
    assert again.record["restyle"] == restyle.__version__
    x = torch.rand(1, 3, 20, 28)
    blend = torch.tensor([0.3, 0.7])
    torch.testing.assert_close(model.net(x, blend), again.net(x, blend))
    assert again.style_images()[0].size[0] <= 32


def test_sample_sheets_and_checkpoints_are_written_every_n_steps(photos, style, tmp_path):
    out = tmp_path / "m.pt"
    samples = []
    train([style], photos, out, 4, every=2, on_event=lambda e: samples.append(e.step)
          if isinstance(e, restyle.TrainSample) else None)
    assert samples == [2, 4]
    assert sorted(p.name for p in (tmp_path / "m.samples").iterdir()) == ["step00002.png", "step00004.png"]
    assert read_model(tmp_path / "m.ckpt.pt").train["step"] == 4


@pytest.mark.numeric
def test_resume_continues_where_the_checkpoint_stopped_and_ends_as_an_unbroken_run(photos, style, tmp_path):
    straight = train([style], photos, tmp_path / "a.pt", 6, every=3, lr=1e-2)
    train([style], photos, tmp_path / "b.pt", 3, every=3, lr=1e-2)
    started = []
    resumed = train([style], photos, tmp_path / "b.pt", 6, every=3, lr=1e-2, resume=True,
                    on_event=lambda e: started.append(e.start) if isinstance(e, restyle.TrainStarted) else None)
    assert started == [3] and resumed.record["steps"] == 6
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(straight.net(x, torch.ones(1)), resumed.net(x, torch.ones(1)), atol=1e-5, rtol=1e-4)


def test_resume_with_other_options_is_refused(photos, style, tmp_path):
    train([style], photos, tmp_path / "m.pt", 2, every=2)
    with pytest.raises(ConfigError, match="other config"):
        train([style], photos, tmp_path / "m.pt", 4, every=2, resume=True, strength=0.9)


def test_resume_without_a_checkpoint_is_one_line(photos, style, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        train([style], photos, tmp_path / "m.pt", 2, resume=True)


def test_unreadable_photos_are_skipped_and_counted(photos, style, tmp_path):
    started = []
    train([style], photos, tmp_path / "m.pt", 1, every=0,
          on_event=lambda e: started.append(e) if isinstance(e, restyle.TrainStarted) else None)
    assert started[0].skipped == 1 and started[0].photos + started[0].held_out == 6


@pytest.mark.parametrize("files, counted", [({}, "0 image file(s), 0 unreadable"),
                                            ({"broken.png": b"\x89PNG not really"}, "1 image file(s), 1 unreadable")])
def test_a_folder_without_a_readable_photo_is_one_line_and_exit_2(files, counted, style, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for name, data in files.items():
        (empty / name).write_bytes(data)
    code = main(["train", str(style), "--photos", str(empty), "-o", str(tmp_path / "m.pt"), "--steps", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "no readable photo" in err and counted in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_train_cli_writes_a_model_that_run_uses(photos, style, content, tmp_path, capsys):
    model = tmp_path / "cli.pt"
    code = main(["train", str(style), "--photos", str(photos), "-o", str(model), "--steps", "2", "--batch", "1",
                 "--width", "4", "--blocks", "1", "--kernel", "3", "--size", "32", "--every", "0", "-q"])
    assert code == 0 and model.is_file()
    out = tmp_path / "out.png"
    assert main(["run", str(content), "--fast-model", str(model), "-o", str(out), "--size", "40", "-q"]) == 0
    record = restyle.read_run_record(out)
    assert record["config"]["fast_model"] == str(model)
    assert record["inputs"]["sha256"][str(model)] == hashlib.sha256(model.read_bytes()).hexdigest()


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["-o", "model.onnx"], "must end in .pt"),
    (["--photos", "/nonexistent/photos"], "is not a folder"),
])
def test_bad_training_options_are_one_line_and_exit_2(args, message, photos, style, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = {"--photos": str(photos), "-o": "m.pt", "--steps": "1"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["train", str(style), "-q", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_large_photo_folder_is_read_from_disk_as_it_is_sampled(photos, style, tmp_path, monkeypatch):
    from restyle.train import photos as photo_module

    monkeypatch.setattr(photo_module, "IN_MEMORY", 2)
    found = photo_module.load_photos(photos, held_out=1, longest=64, max_pixels=None)
    assert all(isinstance(p, Path) for p in found.train) and len(found.held) == 1
    assert len(found.skipped) == 1  # the text file named .jpg: its header is not an image's
    crops = found.crops(3, 32, __import__("random").Random(0))
    assert crops.shape == (3, 3, 32, 32)


def test_init_from_starts_from_another_models_parameters_and_records_it(photos, style, tmp_path):
    first = train([style], photos, tmp_path / "a.pt", 2, every=0)
    seen = []
    tuned = train([style], photos, tmp_path / "b.pt", 1, every=0, lr=1e-9, init_from=tmp_path / "a.pt",
                  style_weight=5.0, on_event=lambda e: seen.append(e) if isinstance(e, restyle.TrainProgress) else None)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(first.net(x, torch.ones(1)), tuned.net(x, torch.ones(1)), atol=1e-4, rtol=1e-3)
    assert tuned.record["init_from"]["file"] == "a.pt" and tuned.record["config"]["style_weight"] == 5.0


def test_init_from_a_model_of_another_shape_is_refused(photos, style, tmp_path):
    train([style], photos, tmp_path / "a.pt", 1, every=0)
    with pytest.raises(ConfigError, match="has shape"):
        train([style], photos, tmp_path / "b.pt", 1, every=0, width=6, init_from=tmp_path / "a.pt")


def test_without_photos_training_reads_the_built_corpus_less_its_held_out_photos(photos, style, tmp_path,
                                                                                   monkeypatch, capsys):
    corpus = tmp_path / "corpus"
    monkeypatch.setenv("RESTYLE_CORPUS", str(corpus))
    assert main(["train", str(style), "-o", str(tmp_path / "m.pt"), "--steps", "1"]) == 2
    assert "no --photos given and no photo corpus" in capsys.readouterr().err
    corpus.mkdir()
    for p in sorted(Path(photos).rglob("*.*")):
        if p.is_file():
            (corpus / p.name).write_bytes(p.read_bytes())
    (corpus / "READY").write_text("3\n")
    model = restyle.train_fast_model(style, None, tmp_path / "m.pt", steps=1, batch=1, size=32, every=0,
                                     held_out=0)
    readable = [p for p in corpus.iterdir() if p.suffix in (".jpg", ".png")]
    assert model.record["photos"] + model.record["skipped"] == len(readable)
