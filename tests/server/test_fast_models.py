"""Specification of fast models on the server (``restyle serve --models DIR``): the listing names the
models in the folder with their styles (files that are not models left out, with a line in the
log); a job names a model by that name and a blend instead of giving style images, runs through the
same queue and store, and finishes at once with a result image; a style image with a model, an
unknown model (a path too), a blend of the wrong length and a --refine over the iteration cap are
refused with 422 and one line, and no job is made."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from server_helpers import app_client, wait_for

import restyle
from restyle import api
from restyle.errors import ConfigError
from restyle.server import Settings
from shared_helpers import tiny_fast_model

FINAL = ("done", "failed", "cancelled")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with a two-style model ``duo``, a one-style model ``solo`` and a file that is no model."""
    folder = tmp_path_factory.mktemp("models")
    tiny_fast_model(folder / "duo.pt", styles=2)
    tiny_fast_model(folder / "solo.pt", styles=1, seed=1)
    (folder / "broken.pt").write_bytes(b"not a model")
    (folder / "notes.txt").write_text("not a .pt file")
    return folder


def post(client, photo: bytes, options: dict, *styles: bytes):
    files = [("content", ("photo.png", photo, "image/png"))]
    files += [("style", (f"style{i}.png", s, "image/png")) for i, s in enumerate(styles)]
    return client.post("/api/jobs", data={"options": json.dumps(options)}, files=files)


def refused(response, field: str) -> str:
    """The one-line error of a 422 that names ``field`` (checked)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert "\n" not in body["error"]
    assert any(item["loc"][-1] == field for item in body["detail"]), body
    return str(body["error"])


def test_the_models_listing_names_each_model_in_the_folder_with_its_styles(tmp_path, models, caplog):
    with caplog.at_level(logging.WARNING, logger="restyle.server"), \
            app_client(tmp_path / "data", models=models) as client:
        listing = client.get("/api/models")
    assert listing.status_code == 200
    by_name = {m["name"]: m for m in listing.json() if not m["bundled"]}
    assert set(by_name) == {"duo", "solo"}  # broken.pt and notes.txt are not offered
    assert by_name["duo"]["styles"] == ["style1", "style2"] and by_name["solo"]["styles"] == ["style1"]
    assert by_name["duo"]["shape"]["styles"] == 2 and by_name["duo"]["steps"] == 0 and by_name["duo"]["photos"] == 0
    assert "path" not in by_name["duo"] and str(models) not in listing.text  # no server paths
    skipped = [r.getMessage() for r in caplog.records if "broken.pt" in r.getMessage()]
    assert len(skipped) == 1 and "\n" not in skipped[0] and "not a restyle fast model" in skipped[0]


def test_without_a_models_folder_only_the_bundled_models_are_listed(tmp_path):
    with app_client(tmp_path / "data") as client:
        listing = client.get("/api/models").json()
    assert all(m["bundled"] for m in listing)
    assert [m["name"] for m in listing] == [m.name for m in api.fast_models()]


def test_a_models_folder_that_does_not_exist_is_refused_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match="--models .*no such folder"):
        Settings(data=tmp_path / "data", models=tmp_path / "missing").check()


def test_a_fast_job_finishes_at_once_with_a_result_image_and_its_record_names_the_model(tmp_path, models, photo):
    with app_client(tmp_path / "data", models=models, devices=["cpu"]) as client:
        wait_for(lambda: client.get("/api/server").json()["workers"][0]["state"] == "idle", 120, "the worker")
        r = post(client, photo, {"fast_model": "duo", "style_blend": [0.7, 0.3], "size": 32})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["inputs"]["styles"] == [] and job["options"]["fast_model"] == "duo"
        done = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").json())["status"] in FINAL and j,
                        30, "the fast job", every=0.05)
        assert done["status"] == "done", done["error"]
        assert done["config"]["fast_model"] == "duo" and done["config"]["style_blend"] == [0.7, 0.3]
        assert done["progress"]["fraction"] == 1.0 and done["progress"]["seconds"] < 5
        assert str(models) not in json.dumps(done)  # the job names the model, not the server's file
        result = client.get(done["links"]["result"])
        assert result.status_code == 200 and result.headers["content-type"] == "image/png"
        saved = tmp_path / "result.png"
        saved.write_bytes(result.content)
        from PIL import Image

        with Image.open(saved) as img:
            assert max(img.size) == 32
        assert client.get(done["links"]["thumbnail"]).status_code == 200
        listed = client.get("/api/jobs").json()["jobs"]  # recorded like every job
        assert [j["id"] for j in listed] == [job["id"]]
        again = client.post(f"/api/jobs/{job['id']}/rerun", json={"options": {"style_blend": [0, 1]}})
        assert again.status_code == 201 and again.json()["config"]["fast_model"] == "duo"


def test_a_style_image_with_a_fast_model_is_refused_with_422(tmp_path, models, photo, painting):
    with app_client(tmp_path / "data", models=models) as client:
        error = refused(post(client, photo, {"fast_model": "duo"}, painting), "style")
        assert "carries its own styles" in error
        assert client.get("/api/jobs").json()["jobs"] == []


def test_no_style_image_and_no_fast_model_is_refused_with_422(tmp_path, models, photo):
    with app_client(tmp_path / "data", models=models) as client:
        assert "at least one style image" in refused(post(client, photo, {"size": 32}), "style")


@pytest.mark.parametrize("name", ["nosuch", "broken", "../models/duo.pt", "/etc/passwd", "duo.pt"])
def test_an_unknown_fast_model_or_a_path_is_refused_with_422(tmp_path, models, photo, name):
    with app_client(tmp_path / "data", models=models) as client:
        error = refused(post(client, photo, {"fast_model": name}), "fast_model")
        assert "no fast model" in error and "duo, solo" in error
        assert client.get("/api/jobs").json()["jobs"] == []


@pytest.mark.parametrize("model, blend", [("duo", [1.0]), ("duo", [0.2, 0.3, 0.5]), ("solo", [0.5, 0.5])])
def test_a_blend_of_the_wrong_length_is_refused_with_422(tmp_path, models, photo, model, blend):
    with app_client(tmp_path / "data", models=models) as client:
        error = refused(post(client, photo, {"fast_model": model, "style_blend": blend}), "style_blend")
        assert f"{len(blend)} weight(s)" in error and f"'{model}'" in error


def test_refine_counts_against_the_iteration_cap_and_needs_a_fast_model(tmp_path, models, photo, painting):
    with app_client(tmp_path / "data", models=models, max_iterations=50) as client:
        error = refused(post(client, photo, {"fast_model": "duo", "refine": 51}), "refine")
        assert "--max-iterations" in error
        assert post(client, photo, {"fast_model": "duo", "refine": 50, "size": 32}).status_code == 201
        assert "--fast-model" in refused(post(client, photo, {"refine": 5}, painting), "refine")


def test_the_size_cap_applies_to_fast_jobs(tmp_path, models, photo):
    with app_client(tmp_path / "data", models=models, max_size=64) as client:
        assert "--max-size" in refused(post(client, photo, {"fast_model": "solo", "size": 128}), "size")


def test_a_bundled_painting_names_a_fast_model_as_it_does_on_the_command_line(tmp_path, photo):
    """``{"fast_model": "starry_night"}`` and no style part is ``restyle run photo --fast-model starry_night``."""
    with app_client(tmp_path / "data", devices=["cpu"]) as client:
        wait_for(lambda: client.get("/api/server").json()["workers"][0]["state"] == "idle", 120, "the worker")
        r = post(client, photo, {"fast_model": "starry_night", "size": 32})
        assert r.status_code == 201, r.text
        job = r.json()
        done = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").json())["status"] in FINAL and j,
                        60, "the fast job", every=0.05)
        assert done["status"] == "done", done["error"]
        assert done["config"]["fast_model"] == "starry_night"
        served = tmp_path / "served.png"
        served.write_bytes(client.get(done["links"]["result"]).content)
    (tmp_path / "photo.png").write_bytes(photo)
    here = restyle.stylize(tmp_path / "photo.png", [], fast_model="starry_night", size=32)
    from PIL import Image

    with Image.open(served) as img:
        assert (np.asarray(img.convert("RGB")) == np.asarray(here.image)).all()
