"""Specification of the run configuration's fields as users meet them: every field describes
itself (help, flag, group), one parser turns typed text into a field's value for the command
line, ``--sweep`` and ``Config.from_text`` alike, and the saved config keeps its shape."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from restyle import cli, spec
from restyle.cli.options import run_options
from restyle.config import (
    GROUPS,
    Config,
    options,
    parse_field,
    run_fields,
    value_kind,
)
from restyle.errors import ConfigError
from restyle.study.grid import parse_sweep


def run_help(capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def cli_value(name: str, *argv: str):
    args = cli.build_parser().parse_args(["run", "c.jpg", "s.jpg", "-o", "o.png", *argv])
    return run_options(args)[name]


# ---- the fields describe themselves ---------------------------------------------------------


def test_every_field_has_help_and_a_flag_or_is_marked_internal():
    fields = [f.name for f in dataclasses.fields(Config)]
    assert list(options()) == fields
    for name, opt in options().items():
        assert opt.help.strip(), name
        assert opt.flags or opt.internal, name
        if opt.flags:
            assert opt.flags[0].startswith("--"), name  # the long flag first
            assert opt.group in GROUPS, name
    assert run_fields() == [n for n in fields if options()[n].internal is None]
    assert "preset" not in run_fields() and options()["preset"].internal


def test_flags_are_unique_and_follow_the_field_names():
    flags = [f for opt in options().values() for f in opt.flags]
    flags += [opt.shortcut[0] for opt in options().values() if opt.shortcut]
    assert len(flags) == len(set(flags))
    renamed = {n: options()[n].flags[0] for n in run_fields() if options()[n].flags[0] != "--" + n.replace("_", "-")}
    assert renamed == {"masks": "--mask", "style_masks": "--style-mask"}  # one item per flag: singular


def test_choices_are_the_values_the_config_accepts():
    for name, opt in options().items():
        if opt.choices is None or opt.internal:
            continue
        for value in opt.choices:
            Config(**{name: value})
        with pytest.raises(ConfigError):
            Config(**{name: "not-a-choice"})


def test_to_dict_keeps_its_fields_order_and_defaults():
    """Saved PNGs hold ``to_dict()``; its shape is what loads them back."""
    assert Config().to_dict() == {
        "size": 512, "style_scale": 1.0, "style_blend": None, "max_pixels": 178_956_970, "model": "vgg19",
        "weights": None, "pooling": "max", "fallback_vgg19": False, "content_layers": {"block4_conv2": 1.0},
        "style_layers": {n: 1.0 for n in spec.GATYS_STYLE}, "content_weight": 1.0, "style_weight": 50.0,
        "strength": None, "style_loss": "gram", "tv_weight": 1.0, "optimizer": "lbfgs", "iterations": None,
        "stop_tolerance": 0.02, "time_limit": None, "lr": None, "line_search": False, "safeguard": "reset", "ema": 0.0, "init": "content", "seed": 0,
        "preserve_color": None, "masks": None, "style_masks": None, "label_image": None, "photo_weight": 0.0,
        "photo_filter": False, "scales": None, "multiscale": True, "lead_stage": False, "pyramid": False,
        "device": "auto", "precision": "auto",
        "tile": None, "max_memory": "auto", "method": None, "method_options": {}, "fast_model": None, "refine": 0, "preset": None,
    }
    assert list(Config().to_dict()) == [f.name for f in dataclasses.fields(Config)]
    saved = Config.from_options(preset="seed", size=64, masks=["m.png"]).to_dict()
    assert Config.from_dict(saved).to_dict() == saved


# ---- one parser for typed text --------------------------------------------------------------


@pytest.mark.parametrize("name, text, value", [
    ("line_search", "true", True), ("line_search", "Off", False), ("multiscale", "1", True),
    ("iterations", "40", 40), ("iterations", "1e3", 1000), ("seed", "-3", -3),
    ("max_pixels", "178956970", 178_956_970), ("size", "none", None), ("size", "256", 256),
    ("style_weight", "1e4", 1e4), ("lr", "0.5", 0.5), ("lr", "null", None),
    ("model", "vgg16", "vgg16"), ("preserve_color", "none", None), ("init", " noise ", "noise"),
    ("style_blend", "0.7, 0.3", [0.7, 0.3]), ("scales", "64,128", [64, 128]),
    ("masks", "a.png,b.png", ["a.png", "b.png"]), ("style_masks", "none", None),
    ("content_layers", "block2_conv2:2,block3_conv1", {"block2_conv2": 2.0, "block3_conv1": 1.0}),
    ("style_layers", "seed", {n: 1.0 for n in spec.LAYER_SETS["seed"]}),
    ("--style-weight", "10", 10.0), ("tv-weight", "0", 0.0),
])
def test_parse_field_parses_each_type(name, text, value):
    parsed = parse_field(name, text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("name, text, words", [
    ("iterations", "1.5", "--iterations: '1.5' is not a valid int"),
    ("size", "big", "--size: 'big' is not a valid int (or none)"),
    ("style_weight", "lots", "--style-weight: 'lots' is not a valid float"),
    ("content_weight", "none", "--content-weight: 'none' is not a valid float"),
    ("fallback_vgg19", "maybe", "--fallback-vgg19: 'maybe' is not a valid bool"),
    ("scales", "64,x", "--scales: '64,x' is not a valid comma-separated list of ints"),
    ("style_blend", ",", "--style-blend: ',' is not a valid comma-separated list of floats"),
    ("content_layers", "block2_conv2:x", "--content-layers: layer weight in 'block2_conv2:x' is not a number"),
    ("model", "vgg11", "--model: unknown value 'vgg11'; choose one of: vgg16, vgg19"),
    ("preserve_color", "sepia", "--preserve-color: unknown value 'sepia'; choose one of: luminance, histogram, none"),
    ("colour", "red", "unknown option 'colour'"),
    ("preset", "seed", "'preset' is not a run option"),
])
def test_parse_field_rejects_bad_text_with_a_one_line_config_error(name, text, words):
    with pytest.raises(ConfigError) as info:
        parse_field(name, text)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_every_run_field_parses_its_own_default_as_typed():
    """What ``--help`` shows as a default is text the parser takes back to the default value."""
    texts = {"size": "512", "style_scale": "1", "max_pixels": "178956970", "model": "vgg19", "pooling": "max",
             "fallback_vgg19": "false", "content_layers": "block4_conv2", "style_layers": "gatys",
             "content_weight": "1", "style_weight": "50", "tv_weight": "1", "optimizer": "lbfgs",
             "iterations": "auto", "stop_tolerance": "0.02", "max_memory": "auto", "line_search": "off", "init": "content", "seed": "0", "photo_weight": "0",
             "photo_filter": "no", "multiscale": "on", "lead_stage": "off", "pyramid": "off",
             "device": "auto", "precision": "auto",
             "style_loss": "gram", "safeguard": "reset", "ema": "0", "refine": "0", "tile": "off", "time_limit": "off", "fast_model": "off"}
    nullable = {n for n in run_fields() if n not in texts}
    assert nullable == {"style_blend", "weights", "lr", "preserve_color", "masks", "style_masks", "label_image",
                        "scales", "strength", "method"}
    texts.update({n: "none" for n in nullable})
    assert Config.from_text(texts).to_dict() == Config().to_dict()


def test_config_from_text_applies_a_preset_then_the_texts():
    config = Config.from_text({"preset": "seed", "size": "none", "style-weight": "1e3", "line_search": "yes"})
    assert config.preset == "seed" and config.model == "vgg16"
    assert config.size is None and config.style_weight == 1000.0 and config.line_search is True
    with pytest.raises(ConfigError, match="--iterations: 'many'"):
        Config.from_text({"iterations": "many"})


def test_from_values_keeps_none_that_from_options_drops():
    assert Config.from_values({"size": None}).size is None  # a typed `none`: keep the content's size
    assert Config.from_options(size=None).size == 512  # the API's keyword default: not given


# ---- the command line and --sweep agree -----------------------------------------------------


@pytest.mark.parametrize("name, text", [
    ("size", "none"), ("size", "256"), ("iterations", "1e3"), ("max_pixels", "100"), ("style_weight", "1e4"),
    ("lr", "none"), ("lr", "0.25"), ("seed", "7"), ("model", "vgg16"), ("pooling", "avg"), ("init", "noise"),
    ("device", "cuda:1"), ("precision", "bf16"), ("preserve_color", "histogram"), ("photo_weight", "123"),
    ("style_blend", "0.5,0.5"), ("scales", "64,128"), ("content_layers", "block2_conv2:2,block3_conv1"),
    ("weights", "none"), ("label_image", "labels.png"),
])
def test_cli_and_sweep_give_the_same_value_for_the_same_text(name, text):
    flag = options()[name].flags[0]
    assert cli_value(name, flag, text) == parse_sweep(f"{name}={text}")[1][0] == parse_field(name, text)


def test_cli_repeated_and_boolean_flags_match_the_sweep_values():
    assert cli_value("masks", "--mask", "a.png", "--mask", "b.png") == parse_sweep("masks=a.png,b.png")[1][0]
    assert cli_value("style_masks", "--style-mask", "none", "--style-mask", "s.png") == ["none", "s.png"]
    for name in [n for n in run_fields() if value_kind(n) == "bool"]:
        flag = options()[name].flags[0]
        assert cli_value(name, flag) is parse_sweep(f"{name}=true")[1][0] is True
        assert cli_value(name, "--no-" + flag[2:]) is parse_sweep(f"{name}=false")[1][0] is False
    assert cli_value("photo_weight", "--photo") == options()["photo_weight"].shortcut[1]


def test_run_help_lists_every_user_facing_field_with_help(capsys):
    out = run_help(capsys)
    for name in run_fields():
        opt = options()[name]
        for flag in opt.flags:
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", out), flag
        words = opt.help.split()[:4]  # the help text, as argparse wraps it
        assert " ".join(words) in " ".join(out.split()), name
    assert "--preset" in out and "--photo" in out


def test_pixel_cap_default_is_one_value_across_config_loader_and_help(capsys):
    from restyle.io import images

    cap = spec.DEFAULT_MAX_PIXELS
    assert Config().max_pixels == cap == images.DEFAULT_MAX_PIXELS
    assert inspect.signature(images.load_image).parameters["max_pixels"].default == cap
    help_text = " ".join(run_help(capsys).split())
    shown = re.search(r"--max-pixels N refuse input images [^(]*\([^)]*\)[^(]*\(default (\d+)\)", help_text)
    assert shown and int(shown.group(1)) == cap
