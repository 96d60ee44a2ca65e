"""The names `import restyle` offers are a promise to users: adding one is a decision, removing
or renaming one breaks their code. This file pins them."""

from __future__ import annotations

import subprocess
import sys

import restyle

PUBLIC = {
    "Config", "Finished", "FinishNow", "LAYER_SETS", "PRESETS", "Progress", "RestyleError", "Result", "Started",
    "StyleTransfer", "VGGFeatures", "__version__", "build_backbone", "build_grid", "layer_names", "load_weights",
    "preset_grid", "read_run_record", "run_study", "score", "stylize", "stylize_video", "score_video",
    "plan_batch", "run_batch", "Method", "Backbone",
    "train_fast_model", "TrainStarted", "TrainProgress", "TrainSample", "TrainFinished",
}


def test_the_public_names_are_exactly_the_pinned_ones():
    assert set(restyle.__all__) == PUBLIC
    assert set(dir(restyle)) == PUBLIC


def test_every_public_name_resolves():
    for name in PUBLIC:
        assert getattr(restyle, name) is not None, name


def test_front_end_entry_points_come_from_the_api_module():
    from restyle import api

    for name in ("stylize", "score", "read_run_record", "build_grid", "preset_grid", "run_study", "stylize_video",
                 "score_video", "plan_batch", "run_batch", "train_fast_model"):
        assert getattr(restyle, name) is getattr(api, name), name


def test_importing_restyle_does_not_import_torch():
    """`import restyle` is instant; torch loads when a name that needs it is first used."""
    code = "import sys, restyle; restyle.Config; restyle.LAYER_SETS; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_an_unknown_name_is_an_attribute_error():
    try:
        restyle.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("restyle.no_such_thing did not raise")
