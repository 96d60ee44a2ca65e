"""Specification of a shared server's caps: a job over --max-size or --max-iterations is refused
with 422 naming the field and the cap; one client cannot fill the queue while others wait (429 past
its share, another client still accepted); a job running past --max-job-seconds is stopped, marked
failed with the reason, and keeps its last image."""

from __future__ import annotations

import json
from pathlib import Path

from server_helpers import TINY, app_client, wait_for


def post(client, photo: bytes, painting: bytes, options: dict, who: str | None = None):
    return client.post("/api/jobs", data={"options": json.dumps(options)},
                       files=[("content", ("photo.png", photo, "image/png")), ("style", ("art.png", painting, "image/png"))],
                       headers={"X-Restyle-Client": who} if who else {})


def test_sizes_and_iterations_over_the_caps_are_refused_with_422_naming_them(tmp_path: Path, photo, painting):
    with app_client(tmp_path / "data", max_size=64, max_iterations=50) as client:
        limits = client.get("/api/options").json()["limits"]
        assert limits["max_size"] == 64 and limits["max_iterations"] == 50
        for options, field, cap in [({**TINY, "size": 200000}, "size", "--max-size"),
                                    ({**TINY, "scales": [32, 128]}, "scales", "--max-size"),
                                    ({**TINY, "iterations": 10**12}, "iterations", "--max-iterations")]:
            r = post(client, photo, painting, options)
            assert r.status_code == 422, r.text
            (error,) = r.json()["detail"]
            assert error["loc"][-1] == field and cap in error["msg"] and "cap" in error["msg"]
        assert post(client, photo, painting, {**TINY, "size": 64, "iterations": 50}).status_code == 201
        auto = {k: v for k, v in TINY.items() if k != "iterations"}
        assert post(client, photo, painting, auto).status_code == 201  # the automatic stop: always within
        assert len(client.get("/api/jobs").json()["jobs"]) == 2


def test_one_client_cannot_fill_the_queue_while_another_still_gets_in(tmp_path: Path, photo, painting):
    with app_client(tmp_path / "data", max_queued_per_client=2) as client:  # no workers: jobs stay queued
        assert [post(client, photo, painting, TINY, "alice").status_code for _ in range(2)] == [201, 201]
        refused = post(client, photo, painting, TINY, "alice")
        assert refused.status_code == 429 and "--max-queued-per-client" in refused.json()["detail"]
        assert post(client, photo, painting, TINY, "bob").status_code == 201


def test_a_job_past_the_time_cap_stops_failed_and_keeps_its_last_image(tmp_path: Path, photo, painting):
    with app_client(tmp_path / "data", devices=["cpu"], max_job_seconds=3) as client:
        wait_for(lambda: client.get("/api/server").json()["workers"][0]["state"] == "idle", 60, "the worker")
        job = post(client, photo, painting, {**TINY, "iterations": 1000}).json()
        over = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").json())["status"]
                        in ("done", "failed", "cancelled") and j, 120, "the job to stop", every=0.2)
        assert over["status"] == "failed" and "--max-job-seconds" in over["error"]
        assert "last image is kept" in over["error"]
        result = client.get(f"/api/jobs/{job['id']}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "image/png"
