"""Specification of the method seam as another package sees it: a method installed under the
entry-point group ``restyle.methods``, with an option of its own that names a file, runs through
``restyle run``, ``restyle batch`` (in this process and in worker processes, its file shipped with
the task), ``restyle study``, ``restyle video``, the Python API and a server job, with no edit to
restyle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restyle import api
from restyle.executors.runs import make_task, run_task
from restyle.methods import registry

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "restyle" / "examples"

PLUGIN = '''
"""A stand-in third method: the photo, tinted towards the colour its --tint-file names."""
import torch
from restyle.io import images
from restyle.methods import MethodBase, MethodOption
from restyle.methods.onepass import content_image, one_pass


class Tint(MethodBase):
    name = "tint"
    summary = "the photo tinted towards a colour"
    paintings = "required"
    options = (MethodOption("tint_file", "a text file holding R,G,B (0-255)", file=True, metavar="PATH"),
               MethodOption("amount", "how far towards the colour (0-1)", default=0.5, type=float))

    def run(self, content, styles, config, *, on_event=None, **_):
        self.check(config, len(styles))
        img = content_image(content, config)
        path = config.method_options.get("tint_file")
        rgb = [int(v) for v in open(path).read().split(",")] if path else [0, 0, 255]
        amount = float(config.method_options.get("amount", 0.5))
        x = images.to_tensor(img)
        tint = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1) / 255
        return one_pass(self.name, img, config, on_event, "cpu", "fp32", [f"tint {rgb}"],
                        lambda: (1 - amount) * x + amount * tint)
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """The package ``restyle_tint`` installed on the path (a dist-info with its entry point), for
    this process and the processes it starts."""
    site = tmp_path_factory.mktemp("site")
    (site / "restyle_tint.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "restyle_tint-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: restyle-tint\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[restyle.methods]\ntint = restyle_tint:Tint\n")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *([old] if old else [])])
    sys.path.insert(0, str(site))
    forget()
    yield site
    sys.path.remove(str(site))
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old
    forget()


def forget() -> None:
    """Drop what this process has read of the installed methods (the registry, the API's schema)."""
    from restyle.server import job_options as options

    registry.methods.cache_clear()
    options.options_model.cache_clear()


@pytest.fixture()
def colour(tmp_path: Path) -> Path:
    path = tmp_path / "red.txt"
    path.write_text("255,0,0")
    return path


def restyle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "restyle", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def redder(path: Path) -> bool:
    """Whether the picture is tinted red (half way: red channel over 127 everywhere)."""
    with Image.open(path) as img:
        a = np.asarray(img.convert("RGB"), dtype=np.int32)
    return bool((a[..., 0] >= 127).all())


def test_an_installed_method_is_listed_with_its_options(installed):
    assert "tint" in api.methods()
    assert set(api.method_options()) >= {"tint_file", "amount"}


def test_restyle_run_takes_the_method_and_its_file_option_and_records_the_file(installed, colour, tmp_path):
    out = tmp_path / "out.png"
    r = restyle("run", str(EXAMPLES / "chelsea.jpg"), str(EXAMPLES / "the_scream.jpg"), "--method", "tint",
                "--tint-file", str(colour), "--size", "32", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert redder(out)
    record = api.read_run_record(out)
    assert record["config"]["method_options"]["tint_file"] == str(colour)
    assert str(colour) in record["inputs"]["sha256"]


def test_an_option_of_another_method_is_one_line_naming_the_conflict(installed, colour, tmp_path):
    r = restyle("run", str(EXAMPLES / "chelsea.jpg"), str(EXAMPLES / "the_scream.jpg"), "--method", "optimise",
                "--tint-file", str(colour), "-o", str(tmp_path / "x.png"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "restyle: error: --tint-file belongs to --method tint, not --method optimise"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batches_run_the_method_in_this_process_and_in_workers(installed, colour, tmp_path, jobs):
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        (photos / name).write_bytes((EXAMPLES / name).read_bytes())
    r = restyle("batch", str(photos), "--styles", str(EXAMPLES / "the_scream.jpg"), "--method", "tint",
                "--tint-file", str(colour), "--size", "32", "--jobs", jobs, "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outs) == 2 and all(redder(p) for p in outs)


def test_a_task_for_a_worker_that_shares_no_files_carries_the_methods_file(installed, colour, tmp_path):
    config = api.Config(method="tint", size=32, method_options={"tint_file": str(colour)})
    task = make_task(config, str(EXAMPLES / "chelsea.jpg"), [str(EXAMPLES / "the_scream.jpg")], ship=True)
    assert str(colour) in task["files"]
    colour.rename(tmp_path / "gone.txt")  # the worker reads the copy the task carries
    outcome = run_task(task)
    assert outcome["error"] == ""
    assert (outcome["image"][..., 0] >= 127).all()


def test_a_study_runs_the_method_for_each_cell(installed, colour, tmp_path):
    r = restyle("study", str(EXAMPLES / "chelsea.jpg"), "--styles", str(EXAMPLES / "the_scream.jpg"),
                "--method", "tint", "--tint-file", str(colour), "--size", "32", "-o", str(tmp_path / "study"),
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pngs = [p for p in (tmp_path / "study").rglob("*.png") if "thumb" not in p.name]
    assert pngs and any(redder(p) for p in pngs)


def test_a_video_runs_the_method_frame_by_frame(installed, colour, tmp_path):
    frames = tmp_path / "clip"
    frames.mkdir()
    with Image.open(EXAMPLES / "chelsea.jpg") as img:
        small = img.convert("RGB").resize((48, 32))
    for i in range(3):
        small.save(frames / f"f{i:03d}.png")
    r = restyle("video", str(frames), str(EXAMPLES / "the_scream.jpg"), "--method", "tint", "--tint-file",
                str(colour), "--size", "48", "--fps", "8", "-o", str(tmp_path / "out") + os.sep, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outs) == 3 and all(redder(p) for p in outs)


def test_the_python_api_runs_the_method_by_name(installed, colour):
    result = api.stylize(EXAMPLES / "chelsea.jpg", [EXAMPLES / "the_scream.jpg"], method_options={
        "tint_file": str(colour), "amount": 1.0}, size=32)
    a = np.asarray(result.image)
    assert (a[..., 0] == 255).all() and (a[..., 1:] == 0).all()


def test_a_server_job_runs_the_method_with_its_own_options(installed, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "server"))
    from server_helpers import app_client, png_bytes, wait_for

    with app_client(tmp_path / "data", devices=["cpu"]) as client:
        described = client.get("/api/options").json()
        assert "tint" in [m["name"] for m in described["methods"]]
        assert "amount" in [f["name"] for f in described["fields"]]
        wait_for(lambda: client.get("/api/server").json()["workers"][0]["state"] == "idle", 120, "the worker")
        files = [("content", ("photo.png", png_bytes(), "image/png")), ("style", ("s.png", png_bytes(), "image/png"))]
        r = client.post("/api/jobs", data={"options": json.dumps({"method": "tint", "amount": 1.0, "size": 32})},
                        files=files)
        assert r.status_code == 201, r.text
        job = r.json()
        done = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").json())["status"] in
                        ("done", "failed", "cancelled") and j, 60, "the job", every=0.05)
        assert done["status"] == "done", done["error"]
        result = tmp_path / "result.png"
        result.write_bytes(client.get(done["links"]["result"]).content)
        with Image.open(result) as img:
            assert (np.asarray(img.convert("RGB"))[..., 2] == 255).all()  # the default colour, blue, in full
