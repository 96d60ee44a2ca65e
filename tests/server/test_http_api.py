"""Specification of the HTTP API without workers (jobs only queue): the page and its assets, submission
with uploads or bundled examples, every bad input (images, options, form fields) refused with the
CLI's one line and no job made, the queue and upload caps, the token, cancel, list, run again."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from server_helpers import TINY, app_client

from restyle import api, config
from restyle.cli import main
from restyle.server.job_options import SERVER_SET, options_model
from restyle.server.settings import Settings
from restyle.server.submit import _display_name


@pytest.fixture
def client(tmp_path: Path):
    with app_client(tmp_path / "data") as c:
        yield c


def submit(client, photo: bytes | str, *styles: bytes | str, options=None, names=None, headers=None):
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    data: dict[str, object] = {"options": json.dumps(TINY if options is None else options)}
    named: dict[str, list[str]] = {"content": [], "style": []}
    for key, value, name in [("content", photo, (names or {}).get("content", "photo.png")),
                             *[("style", s, f"style{i}.png") for i, s in enumerate(styles)]]:
        if isinstance(value, bytes):
            files.append((key, (name, value, "image/png")))
        else:
            named[key].append(value)
    data.update({k: v if len(v) > 1 else v[0] for k, v in named.items() if v})
    return client.post("/api/jobs", data=data, files=files or None, headers=headers or {})


def job_count(client) -> int:
    return len(client.get("/api/jobs").json()["jobs"])


def uploads(data: Path) -> list[Path]:
    return [p for p in (data / "uploads").rglob("*") if p.is_file()]


# ---- the page ---------------------------------------------------------------------------------


def test_the_page_and_every_asset_it_names_are_served_by_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    import re

    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets  # no CDN
    for asset in {a for a in assets if a.startswith("/static/")}:
        assert client.get(asset).status_code == 200, asset
    script = client.get("/static/app.js").text
    assert "http://" not in script and "https://" not in script


def test_openapi_describes_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/result",
                 "/api/jobs/{job_id}/losses.csv", "/api/jobs/{job_id}/rerun", "/api/options", "/api/examples"):
        assert path in paths, path
    assert "multipart/form-data" in paths["/api/jobs"]["post"]["requestBody"]["content"]


def test_openapi_names_the_response_models(client):
    schema = client.get("/openapi.json").json()
    paths, models = schema["paths"], schema["components"]["schemas"]

    def model(path: str, method: str = "get", status: str = "200") -> str:
        ref = paths[path][method]["responses"][status]["content"]["application/json"]["schema"]
        return ref.get("$ref", ref.get("items", {}).get("$ref", "")).rpartition("/")[2]

    assert model("/api/jobs") == "JobList" and model("/api/jobs/{job_id}") == "Job"
    assert model("/api/options") == "RunOptions" and model("/api/server") == "ServerInfo"
    assert model("/api/examples") == "Example"
    assert model("/api/jobs", "post", "201") == "Job" and model("/api/jobs/{job_id}/rerun", "post", "201") == "Job"
    assert model("/api/jobs/{job_id}/cancel", "post") == "Job"
    job = models["Job"]["properties"]
    assert {"id", "status", "progress", "inputs", "links", "cancel_requested"} <= set(job)
    assert set(models["JobLinks"]["properties"]) == {"self", "events", "result", "losses", "thumbnail"}
    assert {"jobs", "next", "counts"} <= set(models["JobList"]["properties"])
    assert {"fields", "presets", "schema"} <= set(models["RunOptions"]["properties"])


def test_the_server_describes_itself_its_options_and_its_examples(client):
    info = client.get("/api/server").json()
    assert info["workers"] == [] and info["counts"]["queued"] == 0 and info["max_queue"] == 100
    fields = {f["name"]: f for f in client.get("/api/options").json()["fields"]}
    assert fields["size"]["kind"] == "int" and fields["size"]["default"] == "512"
    assert fields["preserve_color"]["choices"] == list(config.COLOR_MODES)
    assert "device" not in fields and "masks" not in fields  # set by the server / a path on it
    examples = client.get("/api/examples").json()
    assert {"chelsea.jpg", "starry_night.jpg"} <= {e["name"] for e in examples}
    thumb = client.get(examples[0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert client.get("/api/examples/..%2Fapi.py/thumbnail").status_code == 404


def test_the_api_options_are_the_cli_run_options():
    """Generated from Config: a field added there is an API option, and nothing else is."""
    own = set(api.method_options())  # the methods' own options, as restyle run's --transform
    assert set(options_model().model_fields) == (set(config.run_fields()) - set(SERVER_SET)) | {"preset"} | own


# ---- submitting -------------------------------------------------------------------------------


def test_a_bundled_example_can_be_named_instead_of_uploaded(client):
    r = submit(client, "chelsea", "starry_night.jpg", "the_scream")
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["status"] == "queued" and job["position"] == 1 and job["progress"] is None
    assert job["inputs"]["content"]["example"] == "chelsea.jpg"
    assert [s["example"] for s in job["inputs"]["styles"]] == ["starry_night.jpg", "the_scream.jpg"]
    assert job["config"]["size"] == 32 and job["options"] == TINY
    assert client.get(f"/api/jobs/{job['id']}").json()["id"] == job["id"]
    assert client.get(f"/api/jobs/{job['id']}/inputs/2").headers["content-type"] == "image/jpeg"


def test_uploads_are_kept_by_sha256_and_their_file_names_are_never_paths(client, tmp_path, photo, painting):
    import hashlib

    r = submit(client, photo, painting, names={"content": "../../../etc/cron.d/evil.png"})
    assert r.status_code == 201, r.text
    content = r.json()["inputs"]["content"]
    assert content["name"] == "evil.png"  # its last part, for people to read only
    assert _display_name("..\\x\\a\x00b\nc.png") == "abc.png" and _display_name(None) == "upload"
    digest = hashlib.sha256(photo).hexdigest()
    assert content["sha256"] == digest
    stored = sorted(p.name for p in uploads(tmp_path / "data"))
    assert stored == sorted({digest, hashlib.sha256(painting).hexdigest()})
    again = submit(client, f"sha256:{digest}", painting)  # an earlier upload named by its digest
    assert again.status_code == 201 and again.json()["inputs"]["content"]["sha256"] == digest
    assert len(uploads(tmp_path / "data")) == 2


def _png_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (a decompression bomb's)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    chunk = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(chunk))
    return bytes(data)


def _one_pixel() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind, status", [("not an image", 400), ("truncated", 400), ("bomb", 413), ("1x1", 422)])
def test_a_bad_image_gets_the_clis_one_line_message_and_no_job(client, tmp_path, photo, painting, capsys,
                                                                 monkeypatch, kind, status):
    data = {"not an image": b"just some text\n", "truncated": photo[: len(photo) // 2],
            "bomb": _png_header(100_000, 100_000), "1x1": _one_pixel()}[kind]
    r = submit(client, data, painting, names={"content": "bad.png"})
    assert r.status_code == status, r.text
    monkeypatch.chdir(tmp_path)
    Path("bad.png").write_bytes(data)
    Path("style.png").write_bytes(painting)
    assert main(["run", "bad.png", "style.png", "-o", "out.png", "--size", "32", "-n", "1", "--device", "cpu"]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("restyle: error: ")
    assert r.json()["error"] == cli_line and "\n" not in cli_line
    assert cli_line.startswith("content image 'bad.png': ")
    assert job_count(client) == 0 and uploads(tmp_path / "data") == []


@pytest.mark.parametrize("options, field", [
    ({"strength_of_will": 1}, "strength_of_will"),  # not a Config field
    ({"size": 8}, "size"), ({"iterations": -1}, "iterations"), ({"size": "big"}, "size"),
    ({"preserve_color": "sepia"}, "preserve_color"), ({"style_weight": -1}, "style_weight"),
    ({"content_layers": "block9_conv9"}, "content_layers"), ({"preset": "vangogh"}, "preset"),
    ({"init": "/etc/passwd"}, "init"), ({"masks": ["/etc/passwd"]}, "masks"), ({"device": "cuda"}, "device"),
    ({"style_blend": [0.5, 0.5]}, "style_blend"),  # two weights, one style
])
def test_unknown_or_out_of_range_options_get_422_naming_the_field(client, photo, painting, options, field):
    r = submit(client, photo, painting, options=options)
    assert r.status_code == 422, r.text
    body = r.json()
    assert [d["loc"] for d in body["detail"]] == [["body", "options", field]]
    assert body["error"].startswith(f"options.{field}: ")
    assert job_count(client) == 0


def test_options_as_text_go_through_the_clis_parser(client, painting, photo):
    r = submit(client, photo, painting, painting, options={"size": "48", "style_blend": "0.7,0.3",
                                                           "style_layers": "seed", "iterations": "1e1"})
    assert r.status_code == 201, r.text
    cfg = r.json()["config"]
    assert (cfg["size"], cfg["style_blend"], cfg["iterations"]) == (48, [0.7, 0.3], 10)
    assert list(cfg["style_layers"]) == ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]


@pytest.mark.parametrize("form, field", [
    ({"style": "starry_night"}, "content"), ({"content": "chelsea"}, "style"),
    ({"content": "chelsea", "style": "starry_night", "colour": "blue"}, "colour"),
    ({"content": "monet", "style": "starry_night"}, "content"),
    ({"content": "chelsea", "style": "starry_night", "options": "{size: 3"}, "options"),
    ({"content": "sha256:" + "0" * 64, "style": "starry_night"}, "content"),
])
def test_missing_or_unknown_form_fields_get_422_naming_them(client, form, field):
    r = client.post("/api/jobs", data=form)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", field]
    assert job_count(client) == 0


# ---- caps -------------------------------------------------------------------------------------


def test_the_queue_cap_refuses_more_jobs_with_429(tmp_path, photo, painting):
    with app_client(tmp_path / "data", max_queue=2) as client:
        assert [submit(client, photo, painting).status_code for _ in range(2)] == [201, 201]
        r = submit(client, photo, painting)
        assert r.status_code == 429 and r.headers["retry-after"] and "queue is full" in r.json()["error"]
        assert job_count(client) == 2
        client.post(f"/api/jobs/{client.get('/api/jobs').json()['jobs'][0]['id']}/cancel")
        assert submit(client, photo, painting).status_code == 201  # room again


def test_the_upload_cap_refuses_a_larger_image_with_413(tmp_path, photo, painting):
    small = 0.5 * len(photo) / 1048576
    with app_client(tmp_path / "data", max_upload_mb=small) as client:
        r = submit(client, photo, "starry_night", names={"content": "big.png"})
        assert r.status_code == 413 and r.json()["error"].startswith("content image 'big.png': the file is over")
        whole = client.post("/api/jobs", content=b"x" * (2 << 20),  # over (1 + max styles) images and 1 MB
                            headers={"content-type": "multipart/form-data; boundary=b"})
        assert whole.status_code == 413  # refused from its length, before it is read
        assert job_count(client) == 0 and uploads(tmp_path / "data") == []


# ---- the token --------------------------------------------------------------------------------


def test_every_api_call_needs_the_token_when_one_is_set(tmp_path):
    with app_client(tmp_path / "data", token="correct-horse") as client:
        assert client.get("/").status_code == 200  # the page itself asks for the token
        paths = client.get("/openapi.json").json()["paths"]
        api_routes = [(m.upper(), p) for p, ops in paths.items() if p.startswith("/api") for m in ops]
        assert len(api_routes) >= 12
        for method, path in api_routes:
            url = path.replace("{job_id}", "abc").replace("{name}", "chelsea.jpg").replace("{index}", "0")
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "correct-horse"}):
                r = client.request(method, url, headers=headers)
                assert r.status_code == 401, (method, url, headers, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer"
        ok = client.get("/api/jobs", headers={"Authorization": "Bearer correct-horse"})
        assert ok.status_code == 200


def test_listening_beyond_this_machine_needs_a_token(capsys, monkeypatch):
    monkeypatch.delenv("RESTYLE_TOKEN", raising=False)
    with pytest.raises(Exception, match="give a --token"):
        Settings(host="0.0.0.0").check()
    Settings(host="0.0.0.0", token="long-enough").check()
    Settings(host="::1").check()
    assert main(["serve", "--host", "192.168.1.5", "--data", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("restyle: error: --host 192.168.1.5 makes the server reachable") and err.count("\n") == 1


# ---- the life of a job ------------------------------------------------------------------------


def test_a_queued_job_is_cancelled_at_once_and_a_finished_one_can_be_deleted(client, tmp_path, photo, painting):
    job = submit(client, photo, painting).json()
    r = client.post(f"/api/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    for tail in ("result", "losses.csv", "thumbnail"):
        assert client.get(f"/api/jobs/{job['id']}/{tail}").status_code == 409
    events = client.get(f"/api/jobs/{job['id']}/events")  # a finished job: its snapshot, then the end
    assert events.text.startswith("event: snapshot\n") and events.text.count("event:") == 1
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert uploads(tmp_path / "data") == [] and not (tmp_path / "data" / "jobs" / job["id"]).exists()
    queued = submit(client, photo, painting).json()  # a queued job is cancelled, then forgotten
    assert client.delete(f"/api/jobs/{queued['id']}").status_code == 204
    assert client.get(f"/api/jobs/{queued['id']}").status_code == 404


def test_an_unknown_job_is_404_on_every_job_endpoint(client):
    for method, tail in [("GET", ""), ("GET", "/events"), ("GET", "/result"), ("GET", "/losses.csv"),
                         ("GET", "/thumbnail"), ("GET", "/inputs/0"), ("DELETE", ""), ("POST", "/cancel"),
                         ("POST", "/rerun")]:
        r = client.request(method, f"/api/jobs/0123456789ab{tail}")
        assert r.status_code == 404 and r.json()["error"] == "no job '0123456789ab'", (method, tail)
    assert client.get("/api/jobs/..%2F..%2Fetc").status_code == 404


def test_jobs_are_listed_newest_first_a_page_at_a_time(client):
    ids = [submit(client, "chelsea", "starry_night").json()["id"] for _ in range(5)]
    first = client.get("/api/jobs?limit=2").json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2] and first["counts"]["queued"] == 5
    second = client.get(f"/api/jobs?limit=2&before={first['next']}").json()
    third = client.get(f"/api/jobs?limit=2&before={second['next']}").json()
    assert [j["id"] for j in second["jobs"] + third["jobs"]] == ids[::-1][2:] and third["next"] is None
    assert client.get("/api/jobs?status=done").json()["jobs"] == []
    assert client.get("/api/jobs?limit=0").status_code == 422


def test_a_retried_submission_with_the_same_idempotency_key_makes_one_job(client, photo, painting):
    first = submit(client, photo, painting, headers={"Idempotency-Key": "k-1"})
    again = submit(client, photo, painting, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    assert job_count(client) == 1


def test_run_again_reuses_the_inputs_and_options_with_changes(client, photo, painting):
    job = submit(client, photo, painting, options={**TINY, "preserve_color": "luminance"}).json()
    r = client.post(f"/api/jobs/{job['id']}/rerun", json={"options": {"iterations": 3}})
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["parent"] == job["id"] and again["inputs"] == job["inputs"]
    assert again["options"] == {**TINY, "preserve_color": "luminance", "iterations": 3}
    bad = client.post(f"/api/jobs/{job['id']}/rerun", json={"options": {"size": 1}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "options", "size"]


def test_a_second_server_cannot_share_the_data_folder(tmp_path):
    with app_client(tmp_path / "data"):
        with pytest.raises(Exception, match="another restyle serve .* uses the data folder"):
            with app_client(tmp_path / "data"):
                pass
    assert os.path.exists(tmp_path / "data" / "jobs.sqlite3")
