"""The HTTP API keeps the contract its /openapi.json states: every answer a route gives is declared
with the one error body, bounded inputs are refused with a 4xx (never a 500), and faults of the
server's own storage are said in the client's terms."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from server_helpers import TINY, LiveServer, app_client, wait_for

from restyle.server.rebuild import rebuild
from restyle.server.records import STATUSES

ERROR_BODY = "#/components/schemas/ErrorBody"


@pytest.fixture
def client(tmp_path):
    with app_client(tmp_path / "data", max_size=256, max_iterations=20) as c:
        yield c


def job(client, **options):
    r = client.post("/api/jobs", data={"content": "chelsea", "style": "starry_night",
                                        "options": json.dumps({**TINY, **options})})
    assert r.status_code == 201, r.text
    return r.json()


def test_the_schema_is_valid_openapi(client):
    validator = pytest.importorskip("openapi_spec_validator", reason="the test extra has openapi-spec-validator")
    validator.validate(client.get("/openapi.json").json())


def test_every_error_answer_is_declared_with_the_one_error_body(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            declared = {int(code): spec for code, spec in op["responses"].items() if int(code) >= 400}
            assert 401 in declared, (method, path)
            for code, spec in declared.items():
                assert spec["content"]["application/json"]["schema"]["$ref"] == ERROR_BODY, (method, path, code)
            if "{job_id}" in path:
                assert 404 in declared, (method, path)
    assert {404, 409} <= set(map(int, paths["/api/jobs/{job_id}/result"]["get"]["responses"]))
    assert {400, 413, 422, 429, 503} <= set(map(int, paths["/api/jobs"]["post"]["responses"]))


def test_the_schema_states_this_servers_caps_and_names(client):
    schema = client.get("/openapi.json").json()
    options = schema["components"]["schemas"]["Options"]["properties"]
    assert options["size"]["maximum"] == 256 and options["size"]["default"] == 256 and options["size"]["minimum"] == 16
    assert options["iterations"]["maximum"] == 20 and options["stop_tolerance"]["exclusiveMaximum"] == 1
    fields = {f["name"]: f for f in client.get("/api/options").json()["fields"]}
    assert fields["size"]["value"] == 256  # a job without a size gets the cap, as the schema says
    unsized = client.post("/api/jobs", data={"content": "chelsea", "style": "starry_night"})
    assert unsized.status_code == 201 and unsized.json()["config"]["size"] == 256
    form = schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["properties"]["style"]["maxItems"] == 8 and form["schema"]["additionalProperties"] is False
    names = form["schema"]["properties"]["content"]["anyOf"][1]["enum"]
    assert "chelsea" in names and "starry_night.jpg" in names
    links = schema["paths"]["/api/jobs"]["post"]["responses"]["201"]["links"]
    assert {"GetJob", "Result", "Rerun", "Cancel", "Delete"} <= set(links)
    assert client.post("/api/jobs", data={"content": form["example"]["content"], "style": form["example"]["style"],
                                          "options": json.dumps(form["example"]["options"])}).status_code == 201


@pytest.mark.parametrize("value, field", [(True, "size"), (0, "pyramid"), (2**70, "seed"), (0, "stop_tolerance"),
                                          ([], "content_layers"), ({"block9_conv9": 1}, "style_layers"),
                                          ([0, 0], "style_blend"), (300, "size")])
def test_each_bound_the_schema_states_is_the_servers(client, value, field):
    r = client.post("/api/jobs", data={"content": "chelsea", "style": "starry_night",
                                        "options": json.dumps({**TINY, field: value})})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text


def test_no_input_reaches_a_server_error(client):
    assert client.get("/api/jobs", params={"before": 10**25}).status_code == 422
    assert client.get("/api/jobs/" + "a" * 65).status_code == 422
    assert client.get("/api/examples/" + "x" * 201 + "/thumbnail").status_code == 422
    made = job(client)
    assert client.get(f"/api/jobs/{made['id']}/inputs/{10**25}").status_code == 422
    assert client.get(f"/api/jobs/{made['id']}/inputs/7").status_code == 404
    long_key = client.post("/api/jobs", data={"content": "chelsea", "style": "starry_night"},
                           headers={"Idempotency-Key": "k" * 201})
    assert long_key.status_code == 422 and "Idempotency-Key" in long_key.json()["error"]
    bad_method = client.post("/api/jobs", data={"content": "chelsea", "style": "starry_night",
                                                "options": json.dumps({"method": {}, "levels": 2})})
    assert bad_method.status_code == 422
    two_methods = client.post("/api/jobs", data={"content": "chelsea", "options": json.dumps(
        {"fast_model": "starry_night", "levels": 2})})
    assert two_methods.status_code == 422 and "belongs to --method universal" in two_methods.json()["error"]
    assert client.post(f"/api/jobs/{made['id']}/rerun", json={"options": False}).status_code == 422
    assert client.post(f"/api/jobs/{made['id']}/rerun", json={"option": {}}).status_code == 422


def test_a_rerun_whose_changes_conflict_with_the_job_is_409_and_a_bad_value_422(client):
    made = job(client)
    blend = client.post(f"/api/jobs/{made['id']}/rerun", json={"options": {"style_blend": [1, 1]}})
    assert blend.status_code == 409 and "style_blend" in blend.json()["error"]
    assert client.post(f"/api/jobs/{made['id']}/rerun", json={"options": {"size": 8}}).status_code == 422
    assert client.post(f"/api/jobs/{made['id']}/rerun", json={"options": {"seed": 3}}).status_code == 201


def test_a_wrong_method_is_405_with_every_method_the_path_takes(client):
    r = client.options("/api/jobs")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST" and "GET, POST" in r.json()["error"]
    r = client.put("/api/jobs/0123456789ab")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"


def test_a_full_disk_refuses_an_upload_in_the_clients_terms(client, monkeypatch, photo, painting, tmp_path):
    from restyle.server.store import Store

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / "uploads" / "tmp" / "x"))

    monkeypatch.setattr(Store, "stage_upload", full)
    r = client.post("/api/jobs", files={"content": ("photo.png", photo), "style": ("painting.png", painting)})
    assert r.status_code == 503 and "disk is full" in r.json()["error"] and str(tmp_path) not in r.text
    assert client.get("/api/jobs").json()["counts"]["queued"] == 0


def test_a_full_disk_fails_the_job_without_a_server_path(tmp_path, monkeypatch):
    """The worker's own code, in this process: the job's result cannot be written."""
    from restyle import api
    from restyle.server import worker
    from restyle.server.messages import JobFailed, JobSpec

    folder = tmp_path / "data" / "jobs" / "0123456789ab"
    folder.mkdir(parents=True)
    examples = api.example_images()

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(worker, "_write_text", full)
    sent: list = []
    runner = worker.JobRunner(api, "cpu", sent.append, set(), set())
    config = {"size": 32, "iterations": 1, "precision": "fp32", "multiscale": False}
    runner.run(JobSpec(id="0123456789ab", dir=str(folder), config=config, content=str(examples["chelsea.jpg"]),
                       styles=(str(examples["starry_night.jpg"]),), checkpoint_every=100, preview_every=0))
    failed = [m for m in sent if isinstance(m, JobFailed)]
    assert len(failed) == 1 and "disk is full" in failed[0].error and str(tmp_path) not in failed[0].error
    assert str(folder) in (failed[0].detail or "")  # the server's log keeps the path


def test_a_corrupt_job_database_stops_serve_with_one_line_and_exit_2(tmp_path):
    data = tmp_path / "data"
    with app_client(data):
        pass
    (data / "jobs.sqlite3").write_bytes(b"not a database at all" * 100)
    for name in ("jobs.sqlite3-wal", "jobs.sqlite3-shm"):
        (data / name).unlink(missing_ok=True)
    run = subprocess.run([sys.executable, "-m", "restyle", "serve", "--port", "0", "--data", str(data),
                          "--device", "none"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert str(data / "jobs.sqlite3") in run.stderr and "--rebuild-queue" in run.stderr
    server = LiveServer(data, "--rebuild-queue", "--device", "none")  # the way out the line names
    try:
        assert any("rebuilt the queue" in line for line in server.lines)
        assert httpx.get(f"{server.url}/api/jobs").json()["counts"] == {s: 0 for s in STATUSES}
    finally:
        server.stop()


def test_the_rebuilt_queue_keeps_a_finished_jobs_result_and_requeues_the_rest(tmp_path):
    data = tmp_path / "data"
    with app_client(data, devices=["cpu"]) as c:
        done = job(c)
        wait_for(lambda: c.get(f"/api/jobs/{done['id']}").json()["status"] == "done", 120, "the job to finish")
        result = c.get(f"/api/jobs/{done['id']}/result").content
    with app_client(data) as c:  # no workers: this one stays queued
        waiting = job(c)
    (data / "jobs.sqlite3").write_bytes(b"\0" * 4096)
    report = rebuild(data)
    assert report.done == [done["id"]] and report.queued == [waiting["id"]] and report.moved_to is not None
    assert "1 job(s) done, 1 queued again" in report.line()
    with app_client(data) as c:
        assert c.get(f"/api/jobs/{done['id']}").json()["status"] == "done"
        assert c.get(f"/api/jobs/{done['id']}/result").content == result
        again = c.get(f"/api/jobs/{waiting['id']}").json()
        assert again["status"] == "queued" and again["options"] == waiting["options"]
    with sqlite3.connect(report.moved_to) as old:  # the old file is kept as it was
        with pytest.raises(sqlite3.DatabaseError):
            old.execute("SELECT * FROM jobs").fetchall()


def test_the_error_answers_page_is_generated_from_the_schema():
    page = Path(__file__).resolve().parents[2] / "docs" / "api-errors.md"
    made = subprocess.run([sys.executable, "-m", "restyle.server.errordoc"], capture_output=True, text=True,
                          check=True).stdout
    assert page.read_text() == made, "docs/api-errors.md is stale: python -m restyle.server.errordoc > docs/api-errors.md"
