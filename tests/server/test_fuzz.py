"""Two outside clients of the API: a schema-driven fuzzer (schemathesis) finds no fault in a live
server, and a client generated from /openapi.json (openapi-python-client) runs a job to its result."""

from __future__ import annotations

import importlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import LiveServer, app_client, wait_for

ALLOWANCE = Path(__file__).with_name("schemathesis.toml")
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed (the test extra has it)")
    return found


def test_a_schema_fuzzer_finds_no_fault_in_a_live_server(tmp_path):
    """Examples, fuzzing and the stateful phase (links from a new job to its routes), at a fixed seed,
    in a folder without the project's files, with the one allowance of schemathesis.toml. (The
    coverage phase takes about 50 s here; bench/api/fuzz.sh runs every phase.)"""
    schemathesis = tool("schemathesis")
    server = LiveServer(tmp_path / "data", "--max-size", "256", "--max-iterations", "20")
    try:
        run = subprocess.run(
            [schemathesis, "--config-file", str(ALLOWANCE), "run", f"{server.url}/openapi.json", "-n", "10",
             "-w", "1", "--request-timeout", "20", "--seed", "7", "--phases", "examples,fuzzing,stateful",
             "--no-color"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        server.stop()
    summary = run.stdout[run.stdout.find("SUMMARY"):]
    assert run.returncode == 0, run.stdout[-6000:]
    assert "Stateful" in summary and "Fuzzing" in summary and "Tested: 17" in summary, summary


def test_a_client_generated_from_the_schema_runs_a_job_to_its_result(tmp_path, photo, painting, monkeypatch):
    generator = tool("openapi-python-client")
    with app_client(tmp_path / "data", devices=["cpu"]) as http:
        (tmp_path / "openapi.json").write_text(http.get("/openapi.json").text)
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # its formatter, ruff
        subprocess.run([generator, "generate", "--path", "openapi.json", "--output-path", "restyle_client",
                        "--meta", "none"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
        monkeypatch.syspath_prepend(str(tmp_path))
        client_module = importlib.import_module("restyle_client")
        submit = importlib.import_module("restyle_client.api.jobs.submit_api_jobs_post")
        get_job = importlib.import_module("restyle_client.api.jobs.get_job_api_jobs_job_id_get")
        result = importlib.import_module("restyle_client.api.jobs.job_result_api_jobs_job_id_result_get")
        models = importlib.import_module("restyle_client.models")
        types = importlib.import_module("restyle_client.types")

        client = client_module.Client(base_url=str(http.base_url)).set_httpx_client(http)
        body = models.SubmitApiJobsPostBody(
            content=types.File(payload=io.BytesIO(photo), file_name="photo.png", mime_type="image/png"),
            style=[types.File(payload=io.BytesIO(painting), file_name="painting.png", mime_type="image/png")],
            options=models.Options(size=32, iterations=2))
        job = submit.sync(client=client, body=body)
        assert isinstance(job, models.Job), job
        done = wait_for(lambda: (j := get_job.sync(client=client, job_id=job.id)).status.value == "done" and j,
                        120, "the job to finish")
        assert done.progress.iteration == 2
        png = result.sync_detailed(client=client, job_id=job.id)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        refused = submit.sync_detailed(client=client, body=models.SubmitApiJobsPostBody(content="chelsea"))
        assert refused.status_code == 422 and "style image" in refused.parsed.error
