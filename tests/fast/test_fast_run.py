"""Runs with a fast model: one forward pass through the method seam, its styles blended, named by
file or bundled name, refined by the optimiser, in batches; bad models are one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import restyle
from restyle.cli import main
from restyle.errors import ConfigError
from restyle.methods import FastTransfer, fastmodel, method_for
from shared_helpers import tiny_fast_model


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.float32) / 255


def test_a_fast_model_is_the_method_when_the_config_names_one(tiny_model):
    assert isinstance(method_for(restyle.Config(fast_model=str(tiny_model))), FastTransfer)
    assert not isinstance(method_for(restyle.Config()), FastTransfer)


def test_a_fast_run_is_one_forward_pass_with_started_and_finished_events(tiny_model, content):
    events = []
    result = restyle.stylize(content, [], fast_model=str(tiny_model), size=40, on_event=events.append)
    assert [type(e).__name__ for e in events] == ["Started", "Finished"]
    assert events[0].total == 0 and events[0].model == f"fast:{tiny_model}"
    assert max(result.image.size) == 40 and result.history == [] and "fast model" in result.stop_reason


def test_the_blend_mixes_the_models_styles(tiny_model, content):
    one, two, half = (pixels(restyle.stylize(content, [], fast_model=str(tiny_model), size=40, style_blend=b))
                      for b in ([1, 0], [0, 1], [1, 1]))
    assert np.abs(one - two).mean() > 0.02  # the two styles differ
    assert np.abs(half - one).mean() > 0.005 and np.abs(half - two).mean() > 0.005


def test_a_bundled_models_name_or_one_of_its_styles_selects_it(tmp_path, monkeypatch, content):
    tiny_fast_model(tmp_path / "pair.pt")
    monkeypatch.setattr(fastmodel, "BUNDLED", tmp_path)
    assert fastmodel.bundled_names() == ["pair", "style1", "style2"]
    by_style = pixels(restyle.stylize(content, [], fast_model="style2", size=40))
    by_blend = pixels(restyle.stylize(content, [], fast_model="pair", style_blend=[0, 1], size=40))
    np.testing.assert_array_equal(by_style, by_blend)


def test_refine_optimises_the_networks_output_for_n_iterations(tiny_model, content):
    result = restyle.stylize(content, [], fast_model=str(tiny_model), refine=3, size=32)
    assert len(result.history) == 4  # the start, then 3 iterations
    assert result.config.fast_model == str(tiny_model) and result.config.refine == 3


def test_refine_without_a_fast_model_is_refused():
    with pytest.raises(ConfigError, match="--refine N needs --fast-model"):
        restyle.Config(refine=5)


def test_style_images_with_a_fast_model_are_refused(tiny_model, content, style):
    with pytest.raises(ConfigError, match="carries its own styles"):
        restyle.stylize(content, [style], fast_model=str(tiny_model), size=32)


def test_a_blend_of_the_wrong_length_names_the_models_styles(tiny_model, content):
    with pytest.raises(ConfigError, match=r"3 weight\(s\) but the fast model holds 2 style\(s\) \(style1, style2\)"):
        restyle.stylize(content, [], fast_model=str(tiny_model), style_blend=[1, 1, 1], size=32)


def test_a_model_of_another_format_version_is_refused(tmp_path):
    path = tiny_fast_model(tmp_path / "old.pt")
    blob = torch.load(path, weights_only=True)
    blob["version"] = 99
    torch.save(blob, path)
    with pytest.raises(ConfigError, match="model format 99"):
        fastmodel.read_model(path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a model"), "not a restyle fast model"),
    (lambda p: torch.save({"format": "something else"}, p), "not a restyle fast model"),
    (lambda p: None, "does not exist"),
])
def test_a_file_that_is_not_a_model_is_one_line_and_exit_2(make, message, tmp_path, content, capsys):
    bad = tmp_path / "bad.pt"
    make(bad)
    out = tmp_path / "out.png"
    assert main(["run", str(content), "--fast-model", str(bad), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_a_damaged_model_whose_parameters_do_not_fit_is_refused(tmp_path):
    path = tiny_fast_model(tmp_path / "m.pt")
    blob = torch.load(path, weights_only=True)
    blob["shape"]["width"] = 8
    torch.save(blob, path)
    with pytest.raises(ConfigError, match="damaged"):
        fastmodel.read_model(path)


def test_run_with_a_fast_model_takes_the_content_alone(tiny_model, content, style, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["run", str(content), str(style), "--fast-model", str(tiny_model), "-o", str(out), "-q"]) == 2
    assert "content image alone" in capsys.readouterr().err and not out.exists()


def test_a_batch_with_a_fast_model_makes_one_output_per_photo_and_skips_them_when_rerun(tiny_model, content,
                                                                                      inputs, tmp_path):
    out = tmp_path / "out"
    argv = ["batch", str(content), str(inputs["style"]), "--fast-model", str(tiny_model), "-o", str(out),
            "--size", "32", "-q"]
    assert main(argv) == 0
    made = sorted(p.name for p in out.glob("*.png"))
    assert made == ["content__tiny.png", "style__tiny.png"]
    summary = restyle.run_batch(restyle.plan_batch([str(content)], [], out, options={"fast_model": str(tiny_model),
                                                                                     "size": 32}), out)
    assert [r.status for r in summary.results] == ["skipped"]


def test_preserve_color_luminance_keeps_the_photos_chroma(tiny_model, content):
    from restyle.io import images
    from restyle.nn import controls

    plain = restyle.stylize(content, [], fast_model=str(tiny_model), size=40)
    kept = restyle.stylize(content, [], fast_model=str(tiny_model), size=40, preserve_color="luminance")
    photo = images.to_tensor(images.resize_longest(images.load_image(content), 40))
    chroma = lambda r: controls.chroma(images.to_tensor(r.image))  # noqa: E731
    assert (chroma(kept) - controls.chroma(photo)).abs().mean() < 0.02
    assert (chroma(plain) - controls.chroma(photo)).abs().mean() > 2 * (chroma(kept) - controls.chroma(photo)).abs().mean()
