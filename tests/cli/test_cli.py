"""Specification of the command line: help and layer listing, one clear line and exit code 2 for
every bad input (never a traceback, never a partial or clobbered output), the input
conversions that must just work, and the files a run writes."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageOps

from restyle.cli import main
from restyle.io.history import HISTORY_FIELDS
from restyle.io.record import read_run_record, side_paths
from restyle.spec import layer_names
from shared_helpers import run_cli as run

FAST = ["--size", "32", "-n", "1", "--precision", "fp32", "--device", "cpu"]
KNOWN = b"the previous output, which a failed run must leave alone\n"


pytestmark = pytest.mark.usefixtures("no_debug")  # errors as a user sees them


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def assert_looks_like(output: Path, expected: Image.Image, tolerance: float = 8.0) -> None:
    """``output`` (after 1 tiny L-BFGS step from the content) is ``expected`` at the output's size."""
    with Image.open(output) as out:
        size = out.size
    want = np.asarray(expected.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    diff = np.abs(pixels(output) - want).mean()
    assert diff < tolerance, diff


# ---- help ------------------------------------------------------------------------------------


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "layers" in out

    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--output", "--from-image", "--style-layers", "--style-blend", "--preset", "--save-every"):
        assert option in out


def test_layers_lists_both_models(capsys):
    code, out, err = run(capsys, "layers")
    assert code == 0 and err == ""
    sections = out.split("\nvgg")
    listed = {}
    for section in sections[1:]:
        arch = "vgg" + section.split(":", 1)[0]
        listed[arch] = set(section.split("\n\n")[0].split()[1:])
    assert set(listed) == {"vgg16", "vgg19"}
    for arch, names in listed.items():
        assert {"block2_conv2", "pool5"} <= names
        assert names == set(layer_names(arch))
    assert "block5_conv4" in listed["vgg19"] and "block5_conv4" not in listed["vgg16"]


def test_main_leaves_logging_as_it_was(capsys):
    """In-process callers (scripts, tests) keep their logging: main's stderr handler is removed."""
    log = logging.getLogger("restyle")
    before = log.handlers[:], log.propagate
    assert run(capsys, "layers")[0] == 0
    with pytest.raises(SystemExit):
        main(["run"])  # argparse error: no -o
    capsys.readouterr()
    assert (log.handlers, log.propagate) == before


# ---- bad inputs ------------------------------------------------------------------------------


def truncated(source: Path, path: Path, fmt: str) -> Path:
    with Image.open(source) as img:
        img.convert("RGB").save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# Each case: (tmp_path, content, style) -> (argv without -o, fragments the message must hold).
Case = Callable[[Path, Path, Path], tuple[list, list[str]]]


def missing_file(tmp, content, style):
    return [tmp / "missing.jpg", style], ["content image", "missing.jpg': not found"]


def not_an_image(tmp, content, style):
    (tmp / "notes.jpg").write_text("these are my notes, not a photo\n")
    return [content, tmp / "notes.jpg"], ["style image 1", "notes.jpg': not an image file"]


def truncated_jpeg(tmp, content, style):
    return [truncated(content, tmp / "cut.jpg", "JPEG"), style], ["content image", "cut.jpg", "truncated"]


def truncated_png(tmp, content, style):
    return [content, truncated(style, tmp / "cut.png", "PNG")], ["style image 1", "cut.png", "truncated"]


def one_pixel(tmp, content, style):
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp / "dot.png")
    return [tmp / "dot.png", style], ["dot.png", "1x1"]


def decompression_bomb(tmp, content, style):
    return [content, style, "--max-pixels", 100], ["content image", "over the cap of 100", "--max-pixels"]


def unknown_layer(tmp, content, style):
    return [content, style, "--style-layers", "block1_conv1,block9_conv1"], [
        "unknown layer 'block9_conv1'", "valid layers:", "block2_conv2", "pool5"]


def blend_count_mismatch(tmp, content, style):
    return [content, style, "--style-blend", "0.5,0.3,0.2"], ["--style-blend has 3 weight(s) for 1 style image(s)"]


def bad_weights_file(tmp, content, style):
    (tmp / "x.pth").write_text("not really weights\n")
    return [content, style, "--weights", tmp / "x.pth"], [f"weights file '{tmp / 'x.pth'}'"]


def png_without_config(tmp, content, style):
    Image.new("RGB", (8, 8)).save(tmp / "plain.png")
    return ["--from-image", tmp / "plain.png"], ["plain.png", "holds no restyle run config"]


def nan_learning_rate(tmp, content, style):
    return [content, style, "--lr", "nan"], ["--lr must be a finite number > 0, got nan"]


def not_a_whole_number(tmp, content, style):
    return [content, style, "--iterations", "1.5"], ["--iterations: '1.5' is not a valid int"]


def unknown_model(tmp, content, style):
    return [content, style, "--model", "vgg11"], ["--model: unknown value 'vgg11'; choose one of: vgg16, vgg19"]


def too_small_for_the_layers(tmp, content, style):
    Image.new("RGB", (64, 12), (90, 60, 30)).save(tmp / "strip.png")  # 4 poolings leave no row of features
    return [tmp / "strip.png", style], ["content image is 32x6 px", "block5_conv1", "at least 16 px", "--size"]


def memory_budget_too_small(tmp, content, style):
    return [content, style, "--max-memory", 0.05], [  # less than the runtime alone
        "--max-memory 0.05 GB is too little for the 32x22 px stage", "it needs about", "lower --size, or give --max-memory GB"]


@pytest.mark.parametrize("case", [
    missing_file, not_an_image, truncated_jpeg, truncated_png, one_pixel, decompression_bomb, unknown_layer,
    blend_count_mismatch, bad_weights_file, png_without_config, nan_learning_rate, not_a_whole_number, unknown_model,
    too_small_for_the_layers, memory_budget_too_small,
])
def test_bad_input_gets_one_line_and_exit_2(case: Case, tmp_path, content, style, capsys):
    args, fragments = case(tmp_path, content, style)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "OUT.png"
    output.write_bytes(KNOWN)

    code, stdout, err = run(capsys, "run", *args, "-o", output, *FAST)  # no -q: as a user runs it

    assert code == 2
    assert err.startswith("restyle: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and stdout == ""
    for fragment in fragments:
        assert fragment in err
    assert output.read_bytes() == KNOWN
    assert sorted(os.listdir(out_dir)) == ["OUT.png"]  # no CSV, plot, temporary or partial file


def test_text_file_as_weights_is_not_called_pickled_objects(tmp_path, content, style, capsys):
    (tmp_path / "x.pth").write_text("not really weights\n")
    code, _, err = run(capsys, "run", content, style, "-o", tmp_path / "out.png", "--weights", tmp_path / "x.pth",
                       *FAST)
    assert code == 2 and err.count("\n") == 1
    assert "pickled Python objects" not in err
    assert "truncated or corrupt" in err or "not a" in err


def test_missing_output_directory(tmp_path, content, style, capsys):
    output = tmp_path / "no-such-dir" / "out.png"
    code, _, err = run(capsys, "run", content, style, "-o", output, *FAST)
    assert code == 2 and err.count("\n") == 1
    assert err == f"restyle: error: output directory '{output.parent}' does not exist\n"
    assert not output.parent.exists()


def test_output_directory_not_writable(read_only_dir, content, style, capsys):
    read_only_dir.chmod(0o755)
    (read_only_dir / "OUT.png").write_bytes(KNOWN)
    read_only_dir.chmod(0o555)
    code, _, err = run(capsys, "run", content, style, "-o", read_only_dir / "OUT.png", *FAST)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("restyle: error: output directory") and "is not writable" in err
    assert (read_only_dir / "OUT.png").read_bytes() == KNOWN
    assert os.listdir(read_only_dir) == ["OUT.png"]


def test_console_script_prints_no_traceback(tmp_path, content, style):
    """The real `restyle` command, as a user's terminal sees it."""
    script = shutil.which("restyle", path=str(Path(sys.executable).parent)) or shutil.which("restyle")
    assert script, "the restyle console script is not installed"
    bad = truncated(content, tmp_path / "cut.jpg", "JPEG")
    output = tmp_path / "OUT.png"
    output.write_bytes(KNOWN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RESTYLE_DEBUG", None)
    proc = subprocess.run([script, "run", str(bad), str(style), "-o", str(output), *FAST],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("restyle: error: content image")
    assert "Traceback" not in proc.stderr and "truncated" in proc.stderr
    assert output.read_bytes() == KNOWN


# ---- conversions that succeed ----------------------------------------------------------------


def rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def transparent_left_half(size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 255)
    mask.paste(0, (0, 0, size[0] // 2, size[1]))
    return mask


def white_left_half(img: Image.Image) -> Image.Image:
    img = img.convert("RGB")
    img.paste((255, 255, 255), (0, 0, img.width // 2, img.height))
    return img


def cmyk(tmp, content, style):
    rgb(content).convert("CMYK").save(tmp / "cmyk.jpg", quality=95)
    return tmp / "cmyk.jpg", rgb(content), 10.0, None


def png16(tmp, content, style):
    gray = rgb(content).convert("L")
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(tmp / "deep.png")
    assert Image.open(tmp / "deep.png").mode.startswith("I")
    return tmp / "deep.png", gray, 8.0, None


def la_alpha(tmp, content, style):
    la = rgb(content).convert("LA")
    la.putalpha(transparent_left_half(la.size))
    la.save(tmp / "la.png")
    return tmp / "la.png", white_left_half(la.convert("L")), 8.0, "composited on white"


def p_alpha(tmp, content, style):
    pal = rgb(content).quantize(colors=63)
    pal.putpalette(pal.getpalette()[: 63 * 3] + [0, 255, 0])  # index 63: green, made transparent
    pal.paste(63, (0, 0, pal.width // 2, pal.height))
    pal.save(tmp / "pal.png", transparency=63)
    return tmp / "pal.png", white_left_half(pal.convert("RGB")), 8.0, "composited on white"


def exif_rotated(tmp, content, style):
    img = rgb(content)
    assert img.width > img.height
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    img.save(tmp / "rotated.jpg", exif=exif.tobytes(), quality=95)
    return tmp / "rotated.jpg", ImageOps.exif_transpose(rgb(tmp / "rotated.jpg")), 8.0, None


def animated_gif(tmp, content, style):
    first = rgb(content)
    second = rgb(style).resize(first.size)
    first.save(tmp / "anim.gif", save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(tmp / "anim.gif") as gif:
        frame1 = gif.convert("RGB")
    return tmp / "anim.gif", frame1, 10.0, "is animated (2 frames); using the first frame"


@pytest.mark.parametrize("case", [cmyk, png16, la_alpha, p_alpha, exif_rotated, animated_gif])
def test_unusual_inputs_are_converted(case, tmp_path, content, style, capsys):
    source, expected, tolerance, note = case(tmp_path, content, style)
    output = tmp_path / "out.png"
    code, _, err = run(capsys, "run", source, style, "-o", output, *FAST, "-q", "--no-history")
    assert code == 0, err
    assert "error" not in err
    if note:
        assert f"restyle: note: content image '{source}'" in err and note in err
    with Image.open(output) as out:
        assert out.mode == "RGB" and max(out.size) == 32
        if case is exif_rotated:
            assert out.height > out.width  # the aspect follows the rotation
    assert_looks_like(output, expected, tolerance)


def test_gif_frame_check_can_tell_the_frames_apart(tmp_path, content, style):
    """The looks-like check of the GIF case would catch the wrong frame."""
    _, first, tolerance, _ = animated_gif(tmp_path, content, style)
    with Image.open(tmp_path / "anim.gif") as gif:
        gif.seek(1)
        second = gif.convert("RGB")
    second.save(tmp_path / "second.png")
    with pytest.raises(AssertionError):
        assert_looks_like(tmp_path / "second.png", first, tolerance)


# ---- what a run writes -----------------------------------------------------------------------


def test_save_every_and_history_csv(tmp_path, content, style, capsys):
    output = tmp_path / "out.png"
    code, _, err = run(capsys, "run", content, style, "-o", output, "--size", "32", "-n", "5",
                       "--precision", "fp32", "--save-every", "2", "-q")
    assert code == 0, err
    assert err == ""  # --quiet: no progress bar, no summary
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.iter0002.png", "out.iter0004.png", "out.losses.csv", "out.losses.png", "out.png"]
    rows = side_paths(output)["csv"].read_text().splitlines()
    header = rows[0].split(",")
    assert header == list(HISTORY_FIELDS)
    assert header[0] == "iteration" and {"total", "content", "style", "tv", "seconds"} <= set(header)
    assert len(rows) == 1 + 6  # header, then iterations + 1 rows (0..5)
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(6))
    with Image.open(tmp_path / "out.iter0002.png") as img:
        assert img.size == Image.open(output).size


def test_save_every_image_is_the_image_after_that_many_iterations(tmp_path, content, style, capsys):
    options = ["--size", "32", "--precision", "fp32", "-q", "--no-history"]
    assert run(capsys, "run", content, style, "-o", tmp_path / "long.png", "-n", "4", "--save-every", "2",
               *options)[0] == 0
    assert run(capsys, "run", content, style, "-o", tmp_path / "two.png", "-n", "2", *options)[0] == 0
    assert np.array_equal(pixels(tmp_path / "long.iter0002.png"), pixels(tmp_path / "two.png"))


def test_progress_bar_and_summary_without_quiet(tmp_path, content, style, capsys):
    output = tmp_path / "out.png"
    code, _, err = run(capsys, "run", content, style, "-o", output, *FAST, "--no-history")
    assert code == 0
    assert "2/2" in err and ("it/s" in err or "s/it" in err)  # tqdm's bar: 2 rows for 1 iteration
    assert "left, loss" in err  # the engine's estimate of the time left, beside the losses
    assert "restyle: 1 iterations in" in err and f"restyle: wrote {output}" in err


def test_no_history_writes_no_csv_or_plot(tmp_path, content, style, capsys):
    output = tmp_path / "out.png"
    code, _, _ = run(capsys, "run", content, style, "-o", output, *FAST, "-q", "--no-history")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_style_layer_weights_are_saved_in_the_config(tmp_path, content, style, capsys):
    output = tmp_path / "out.png"
    code, _, err = run(capsys, "run", content, style, "-o", output, *FAST, "-q",
                       "--style-layers", "block1_conv1:2,block3_conv1")
    assert code == 0, err
    config = read_run_record(output)["config"]
    assert config["style_layers"] == {"block1_conv1": 2.0, "block3_conv1": 1.0}
    assert config["content_layers"] == {"block4_conv2": 1.0}


def test_help_does_not_import_torch():
    """``restyle --help`` (every subcommand's parser) answers at once: torch is not imported."""
    code = "import sys; from restyle.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---- run options from the config's fields -----------------------------------------------------


def parsed(*argv: str):
    from restyle.cli import build_parser

    return build_parser().parse_args([str(a) for a in argv])


def test_options_not_given_are_not_run_options():
    from restyle.cli.options import run_options

    assert run_options(parsed("run", "c.jpg", "s.jpg", "-o", "o.png")) == {}
    given = run_options(parsed("run", "c.jpg", "s.jpg", "-o", "o.png", "-n", "7", "--size", "none", "--no-photo-filter"))
    assert given == {"iterations": 7, "size": None, "photo_filter": False}  # `none` and `--no-X` are values


def test_size_none_keeps_the_content_image_size(tmp_path, content, style, capsys):
    output = tmp_path / "out.png"
    code, _, err = run(capsys, "run", content, style, "-o", output, "--size", "none", "-n", "0", "--device", "cpu",
                       "--precision", "fp32", "-q", "--no-history")
    assert code == 0, err
    with Image.open(output) as out, Image.open(content) as source:
        assert out.size == source.size
    assert read_run_record(output)["config"]["size"] is None


def test_study_preset_takes_the_study_presets_and_run_preset_does_not(capsys):
    assert parsed("study", "--preset", "seed-table", "-o", "dir").preset == "seed-table"
    assert parsed("study", "c.jpg", "--styles", "s.jpg", "--preset", "seed", "-o", "dir").preset == "seed"
    with pytest.raises(SystemExit) as info:
        parsed("run", "c.jpg", "s.jpg", "--preset", "seed-table", "-o", "o.png")
    assert info.value.code == 2 and "invalid choice: 'seed-table'" in capsys.readouterr().err


def test_reproducing_a_run_never_overwrites_the_output_it_reproduces(tmp_path, content, style, capsys):
    out = tmp_path / "out.png"
    code, _, _ = run(capsys, "run", content, style, "-o", out, *FAST, "-q")
    assert code == 0
    before = out.read_bytes()
    code, _, err = run(capsys, "run", "--from-image", out, "-o", out, "-q")
    assert code == 2
    assert err.strip().splitlines() == [f"restyle: error: output '{out}' is the image the run is reproduced from; "
                                        "choose another output path (restyle never overwrites its inputs)"]
    assert out.read_bytes() == before


def test_a_size_whose_output_passes_the_pixel_cap_is_refused_at_once(tmp_path):
    """A typo such as --size 200000 (for 2000) is refused in under a second, before torch loads,
    with one line naming the size and the cap; nothing is written."""
    import time

    from shared_helpers import EXAMPLES

    out = tmp_path / "out.png"
    start = time.perf_counter()
    main = "import sys; from restyle.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", main, "run", str(EXAMPLES / "chelsea.jpg"),
                           str(EXAMPLES / "starry_night.jpg"), "--size", "200000", "-n", "1", "-o", str(out)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert done.returncode == 2 and seconds < 3.0  # a second on an idle machine; CI shares its cores
    assert done.stderr.count("\n") == 1 and "--size 200000 makes a 200000x133038 px output" in done.stderr
    assert "pixel cap" in done.stderr and not list(tmp_path.iterdir())


def test_the_engine_refuses_an_output_over_the_pixel_cap_before_any_event(content, style):
    from restyle import api
    from restyle.errors import ConfigError

    events: list = []
    with pytest.raises(ConfigError, match="over the pixel cap of 100,000"):
        api.stylize(content, [style], size=512, max_pixels=100_000, on_event=events.append)
    assert events == []
