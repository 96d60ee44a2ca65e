"""Specification of a live ``restyle serve`` (uvicorn on 127.0.0.1, a real worker process): a job is
followed over server-sent events and downloaded; a server SIGKILLed mid-job and started again loses
nothing (the running job resumes, the queued one still runs); 50 concurrent submissions each end up
completed or refused with 429, none lost or duplicated."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from server_helpers import TINY, LiveServer, alive, wait_for

from restyle import api


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("data"), "--max-queue", "10")
    try:
        yield live
    finally:
        live.stop()


def post(url: str, photo: bytes, painting: bytes, timeout: float = 60, **options) -> httpx.Response:
    return httpx.post(f"{url}/api/jobs", data={"options": json.dumps({**TINY, **options})}, timeout=timeout,
                      files=[("content", ("photo.png", photo, "image/png")), ("style", ("art.png", painting, "image/png"))])


def events(url: str, job_id: str, timeout: float = 120, stop=None) -> list[tuple[str, dict]]:
    """The job's server-sent events until its stream ends (or ``stop(kind, data)`` says so)."""
    seen: list[tuple[str, dict]] = []
    with httpx.stream("GET", f"{url}/api/jobs/{job_id}/events", timeout=httpx.Timeout(timeout, connect=10)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind is not None:
                seen.append((kind, json.loads(line[6:])))
                if stop is not None and stop(kind, seen[-1][1]):
                    break
    return seen


def status(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()


def test_a_job_is_followed_live_and_its_png_downloaded(server, photo, painting, tmp_path):
    job = post(server.url, photo, painting, iterations=4).json()
    seen = events(server.url, job["id"])
    kinds = [k for k, _ in seen]
    assert kinds[0] == "snapshot" and kinds[-1] == "status" and seen[-1][1]["status"] == "done"
    assert "started" in kinds and kinds.count("preview") >= 2
    iterations = [d["iteration"] for k, d in seen if k == "progress"]
    assert iterations == list(range(5))  # every history row, in order
    progress = [d for k, d in seen if k == "progress"]
    assert all(0 < p["fraction"] <= 1 and p["total"] == 5 and "style" in p["losses"] for p in progress)
    assert progress[-1]["eta"] == 0
    previews = [d["image"] for k, d in seen if k == "preview"]
    assert all(p.startswith("data:image/jpeg;base64,") for p in previews) and len(set(previews)) >= 2
    result = httpx.get(f"{server.url}/api/jobs/{job['id']}/result", timeout=30)
    assert result.status_code == 200
    (tmp_path / "result.png").write_bytes(result.content)
    assert api.read_run_record(tmp_path / "result.png")["config"]["iterations"] == 4


def test_fifty_concurrent_submissions_are_each_completed_or_refused_none_lost_or_duplicated(server, photo, painting):
    before = {j["id"] for j in httpx.get(f"{server.url}/api/jobs?limit=100", timeout=30).json()["jobs"]}
    answers: list[httpx.Response] = []
    start = threading.Barrier(50)

    def submit_one(i: int) -> None:
        start.wait(timeout=30)
        answers.append(post(server.url, photo, painting, seed=i, iterations=1))

    threads = [threading.Thread(target=submit_one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = Counter(r.status_code for r in answers)
    accepted = [r.json()["id"] for r in answers if r.status_code == 201]
    assert len(answers) == 50 and set(codes) <= {201, 429}, codes
    assert len(set(accepted)) == len(accepted) >= 10  # at least a full queue's worth got in
    assert all("queue is full" in r.json()["error"] for r in answers if r.status_code == 429)

    def all_over() -> list[dict] | None:
        jobs = httpx.get(f"{server.url}/api/jobs?limit=100", timeout=30).json()["jobs"]
        jobs = [j for j in jobs if j["id"] not in before]
        return jobs if all(j["status"] in ("done", "failed", "cancelled") for j in jobs) else None

    jobs = wait_for(all_over, 150, "the accepted jobs to finish", every=1)
    assert sorted(j["id"] for j in jobs) == sorted(accepted)  # none lost, none made twice
    assert {j["status"] for j in jobs} == {"done"} and all(j["attempts"] == 1 for j in jobs)
    seeds = sorted(j["config"]["seed"] for j in jobs)  # each submission had its own seed
    assert seeds == sorted(r.json()["config"]["seed"] for r in answers if r.status_code == 201)
    assert len(set(seeds)) == len(seeds)
    print(f"\nconcurrency: 50 submitted, {len(accepted)} completed, {codes[429]} refused (429), 0 lost")


def test_a_job_interrupted_by_a_server_kill_completes_after_restart(tmp_path: Path, photo, painting):
    data = tmp_path / "data"
    first = LiveServer(data, "--checkpoint-every", "3")
    try:
        running = post(first.url, photo, painting, iterations=24).json()
        waiting = post(first.url, photo, painting, iterations=2).json()
        children = first.worker_pids()  # the worker (and multiprocessing's resource tracker)
        assert children
        events(first.url, running["id"], stop=lambda kind, d: kind == "progress" and d["iteration"] >= 7)
        first.kill()  # SIGKILL: no shutdown, no goodbye
        wait_for(lambda: not any(alive(p) for p in children), 15, "the orphaned worker to exit")
    finally:
        first.stop()
    second = LiveServer(data, "--checkpoint-every", "3")
    try:
        assert status(second.url, waiting["id"])["status"] == "queued"  # still queued
        done = events(second.url, running["id"])[-1][1]["job"]
        assert done["status"] == "done" and done["attempts"] == 2, done
        assert done["resumed_from"] is not None and 6 <= done["resumed_from"] < 24
        rows = list(csv.DictReader(io.StringIO(httpx.get(f"{second.url}{done['links']['losses']}", timeout=30).text)))
        assert [int(r["iteration"]) for r in rows] == list(range(25))
        after = wait_for(lambda: (j := status(second.url, waiting["id"]))["status"] == "done" and j, 60, "the queued job")
        assert after["attempts"] == 1
        listed = httpx.get(f"{second.url}/api/jobs", timeout=30).json()
        assert sorted(j["id"] for j in listed["jobs"]) == sorted([running["id"], waiting["id"]])
        print(f"\nrestart: resumed from iteration {done['resumed_from']} of 24, attempts {done['attempts']}")
    finally:
        second.stop()
