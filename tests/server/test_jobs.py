"""Specification of jobs run by a real worker process (FastAPI's test client, one CPU worker): a job
becomes a PNG with its run record and its loss history; a running job cancels; a worker killed under
its job takes only itself down, and the job resumes from its last saved image."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from pathlib import Path

import pytest
from PIL import Image
from server_helpers import TINY, app_client, wait_for

from restyle import api
from restyle.server.records import ImageInput, JobInputs
from restyle.server.store import Store
from restyle.server.worker import resume_point


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with app_client(tmp_path_factory.mktemp("data"), devices=["cpu"], checkpoint_every=3, max_iterations=5000) as c:
        wait_for(lambda: c.get("/api/server").json()["workers"][0]["state"] == "idle", 60, "the worker to start")
        yield c


def submit(client, photo: bytes, painting: bytes, **options) -> dict:
    r = client.post("/api/jobs", data={"options": json.dumps({**TINY, **options})},
                    files=[("content", ("photo.png", photo, "image/png")), ("style", ("art.png", painting, "image/png"))])
    assert r.status_code == 201, r.text
    return r.json()


def job(client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").json()


def over(client, job_id: str, timeout: float = 90) -> dict:
    return wait_for(lambda: (j := job(client, job_id))["status"] in ("done", "failed", "cancelled") and j, timeout,
                    f"job {job_id} to finish", every=0.2)


def test_a_job_runs_to_a_png_with_its_run_record_and_loss_history(client, photo, painting, tmp_path):
    done = over(client, submit(client, photo, painting, iterations=3)["id"])
    assert done["status"] == "done", done["error"]
    assert done["progress"]["iteration"] == 3 and done["progress"]["fraction"] == 1.0 and done["attempts"] == 1
    result = client.get(done["links"]["result"])
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert f'filename="restyle-{done["id"]}.png"' in result.headers["content-disposition"]
    (tmp_path / "out.png").write_bytes(result.content)
    record = api.read_run_record(tmp_path / "out.png")  # as restyle run --from-image reads it
    assert record["config"]["size"] == 32 and record["config"]["iterations"] == 3
    with Image.open(io.BytesIO(result.content)) as img:
        assert max(img.size) == 32
    rows = list(csv.DictReader(io.StringIO(client.get(done["links"]["losses"]).text)))
    assert [int(r["iteration"]) for r in rows] == [0, 1, 2, 3]
    assert client.get(done["links"]["thumbnail"]).headers["content-type"] == "image/jpeg"


def test_a_running_job_is_cancelled(client, photo, painting):
    running = submit(client, photo, painting, iterations=2000)
    wait_for(lambda: (job(client, running["id"])["progress"] or {}).get("iteration", 0) >= 1, 60, "it to run")
    assert client.delete(f"/api/jobs/{running['id']}").status_code == 409  # running: cancel it first
    r = client.post(f"/api/jobs/{running['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    cancelled = over(client, running["id"], 30)
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["iteration"] < 2000
    assert client.get(f"/api/jobs/{running['id']}/result").status_code == 409
    assert wait_for(lambda: client.get("/api/server").json()["workers"][0]["state"] == "idle", 10, "the worker")


def test_finish_now_ends_a_running_job_done_with_the_picture_so_far(client, photo, painting, tmp_path):
    running = submit(client, photo, painting, iterations=2000)
    queued = submit(client, photo, painting, iterations=3)
    assert client.post(f"/api/jobs/{queued['id']}/finish").json()["error"] == (
        f"job {queued['id']} is queued; it has no picture yet (cancel it instead)")
    wait_for(lambda: (job(client, running["id"])["progress"] or {}).get("iteration", 0) >= 2, 60, "it to run")
    r = client.post(f"/api/jobs/{running['id']}/finish")
    assert r.status_code == 202 and r.json()["status"] == "running" and r.json()["finish_requested"] is True
    done = over(client, running["id"], 30)
    assert done["status"] == "done" and 2 <= done["progress"]["iteration"] < 2000
    assert done["progress"]["stop_reason"] == f"finished on request at iteration {done['progress']['iteration']}"
    (tmp_path / "out.png").write_bytes(client.get(f"/api/jobs/{running['id']}/result").content)
    assert api.read_run_record(tmp_path / "out.png")["stop_reason"] == done["progress"]["stop_reason"]
    again = client.post(f"/api/jobs/{running['id']}/finish")
    assert again.status_code == 409 and again.json()["error"] == f"job {running['id']} is done; nothing to finish"
    assert client.post("/api/jobs/nosuchjob/finish").status_code == 404
    assert over(client, queued["id"])["status"] == "done"  # the next job runs as it would have


def test_a_job_that_cannot_run_fails_with_one_line_and_the_worker_goes_on(client, painting):
    from server_helpers import png_bytes

    blocker = submit(client, png_bytes("rocket.jpg"), painting, iterations=2000)  # keeps the worker busy
    doomed = submit(client, png_bytes("coffee.jpg"), painting)
    data = Path(client.app.state.restyle.settings.data)
    (data / "uploads" / doomed["inputs"]["content"]["sha256"][:2] / doomed["inputs"]["content"]["sha256"]).unlink()
    client.post(f"/api/jobs/{blocker['id']}/cancel")
    failed = over(client, doomed["id"], 60)
    assert failed["status"] == "failed" and failed["error"].startswith("content image '") and "not found" in failed["error"]
    assert "\n" not in failed["error"] and client.get(f"/api/jobs/{doomed['id']}/result").status_code == 409
    after = over(client, submit(client, png_bytes("coffee.jpg", 36), painting)["id"])
    assert after["status"] == "done"


def test_a_worker_killed_under_its_job_takes_only_itself_down_and_the_job_resumes(client, photo, painting, tmp_path):
    victim = submit(client, photo, painting, iterations=24)
    wait_for(lambda: (job(client, victim["id"])["progress"] or {}).get("iteration", 0) >= 7, 60, "a saved image",
             every=0.02)
    pid = client.get("/api/server").json()["workers"][0]["pid"]
    os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    assert client.get("/api/server").status_code == 200  # the server is still there
    done = over(client, victim["id"], 120)
    assert done["status"] == "done" and done["attempts"] == 2, done
    assert done["resumed_from"] is not None and done["resumed_from"] >= 6 and done["resumed_from"] % 3 == 0
    rows = list(csv.DictReader(io.StringIO(client.get(done["links"]["losses"]).text)))
    assert [int(r["iteration"]) for r in rows] == list(range(25))  # one history across both attempts
    assert [float(r["seconds"]) for r in rows] == sorted(float(r["seconds"]) for r in rows)
    worker = client.get("/api/server").json()["workers"][0]
    assert worker["restarts"] == 1 and worker["pid"] != pid
    (tmp_path / "resumed.png").write_bytes(client.get(done["links"]["result"]).content)
    record = api.read_run_record(tmp_path / "resumed.png")  # what made it: the rest, from the saved image
    assert record["config"]["iterations"] == 24 - done["resumed_from"]
    assert Path(record["config"]["init"]).name == "checkpoint.png" and Path(record["config"]["init"]).is_file()
    assert done["config"]["iterations"] == 24 and done["config"]["init"] == "content"  # what was asked for


def test_a_finish_asked_for_just_before_the_worker_died_finishes_the_resumed_job_at_once(client, photo, painting):
    victim = submit(client, photo, painting, iterations=2000)
    wait_for(lambda: (job(client, victim["id"])["progress"] or {}).get("iteration", 0) >= 7, 60, "a saved image",
             every=0.02)
    pid = client.get("/api/server").json()["workers"][0]["pid"]
    os.kill(pid, signal.SIGSTOP)  # the worker cannot act on the request before it dies
    try:
        assert client.post(f"/api/jobs/{victim['id']}/finish").status_code == 202
    finally:
        os.kill(pid, signal.SIGKILL)
    done = over(client, victim["id"], 120)
    assert done["status"] == "done" and done["attempts"] == 2 and done["resumed_from"] is not None, done
    assert done["progress"]["stop_reason"] == f"finished on request at iteration {done['resumed_from']}"
    assert done["finish_requested"] is False  # it is over


def test_a_resumed_jobs_time_limit_counts_the_seconds_before_its_worker_died(client, photo, painting):
    victim = submit(client, photo, painting, iterations=5000, time_limit=4)
    wait_for(lambda: (job(client, victim["id"])["progress"] or {}).get("iteration", 0) >= 7, 60, "a saved image",
             every=0.02)
    os.kill(client.get("/api/server").json()["workers"][0]["pid"], signal.SIGKILL)
    done = over(client, victim["id"], 120)
    assert done["status"] == "done" and done["attempts"] == 2 and done["resumed_from"] is not None, done
    assert done["progress"]["stop_reason"].endswith(": the 4 s time limit (--time-limit)")
    rows = list(csv.DictReader(io.StringIO(client.get(done["links"]["losses"]).text)))
    before = float(rows[done["resumed_from"]]["seconds"])  # the job's seconds when its image was saved
    assert before > 0 and 4 <= float(rows[-1]["seconds"]) < 4 + before  # not a fresh 4 s for the second attempt


def inputs() -> JobInputs:
    """The inputs of a job in the store (a bundled example, as content and style)."""
    image = ImageInput(name="chelsea.jpg", sha256="0" * 64, bytes=1, width=1, height=1, example="chelsea.jpg")
    return JobInputs(content=image, styles=[image])


def test_a_job_whose_worker_keeps_dying_fails_instead_of_running_forever(tmp_path):
    store = Store(tmp_path)
    job, _ = store.create(options={}, preset=None, config={}, inputs=inputs(), max_queue=5)
    statuses = []
    for _ in range(3):
        claimed = store.claim_next("cpu")
        assert claimed is not None and claimed.id == job.id and claimed.status == "running"
        statuses.append(store.requeue(job.id, crashed=True, max_crashes=3, reason="was killed (SIGKILL)"))
    assert statuses == ["queued", "queued", "failed"]
    failed = store.get(job.id)
    assert failed is not None and failed.error == "was killed (SIGKILL) (3 times); not retried"
    assert failed.crashes == 3 and failed.attempts == 3 and failed.inputs == inputs()
    store.close()


def test_a_job_left_running_by_a_stopped_server_is_queued_again_or_cancelled(tmp_path):
    store = Store(tmp_path)
    ids = [store.create(options={}, preset=None, config={}, inputs=inputs(), max_queue=5)[0].id for _ in range(3)]
    for _ in ids:
        store.claim_next("cpu")
    assert store.request_cancel(ids[1]) == "running"
    store.close()
    store = Store(tmp_path)  # the next start
    assert sorted(store.recover()) == sorted(ids)
    jobs = [store.get(i) for i in ids]
    assert [j.status if j else None for j in jobs] == ["queued", "cancelled", "queued"]
    assert [j.position if j else None for j in jobs] == [1, None, 2]
    store.close()


def test_a_coarse_to_fine_job_killed_in_its_last_stage_resumes_there_each_time(client, photo, painting, tmp_path):
    victim = submit(client, photo, painting, iterations=48, scales=[32, 48])  # 48 steps at 32 px, then 24 at 48

    def kill_after(iteration: int, attempt: int) -> None:
        wait_for(lambda: (j := job(client, victim["id"]))["attempts"] == attempt
                 and (j["progress"] or {}).get("iteration", 0) >= iteration, 60, f"iteration {iteration}", every=0.02)
        os.kill(client.get("/api/server").json()["workers"][0]["pid"], signal.SIGKILL)

    kill_after(50, 1)  # past the last stage's first checkpoint (48)
    first = wait_for(lambda: job(client, victim["id"])["resumed_from"], 60, "the resumed attempt")
    kill_after(first + 4, 2)  # past the resumed attempt's first checkpoint
    done = over(client, victim["id"], 120)
    assert done["status"] == "done" and done["attempts"] == 3, done
    assert first >= 48 and done["resumed_from"] > first and done["resumed_from"] % 3 == 0  # checkpoints every 3 steps
    rows = list(csv.DictReader(io.StringIO(client.get(done["links"]["losses"]).text)))
    assert [int(r["iteration"]) for r in rows] == list(range(73))  # one history across the three attempts
    assert [int(r["scale"]) for r in rows] == [32] * 48 + [48] * 25  # both resumptions stayed in the last stage
    (tmp_path / "resumed.png").write_bytes(client.get(done["links"]["result"]).content)
    record = api.read_run_record(tmp_path / "resumed.png")  # the rest of the last stage, from the saved image
    assert record["config"]["iterations"] == 72 - done["resumed_from"] and record["config"]["scales"] is None
    assert record["config"]["size"] == 48 and not record["config"]["multiscale"]
    assert done["config"]["scales"] == [32, 48]  # what was asked for


def test_a_job_resumes_only_from_a_complete_saved_image(tmp_path: Path):
    rows = [{"iteration": i, "seconds": i / 10} for i in range(8)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert resume_point(tmp_path, {"iterations": 20})[:2] == (0, [])  # no image saved yet
    (tmp_path / "checkpoint.png").write_bytes(b"png")
    (tmp_path / "checkpoint.json").write_text(json.dumps({"iteration": 6}))  # as an earlier release saved it
    assert resume_point(tmp_path, {"iterations": 20})[:2] == (6, rows[:6])
    assert resume_point(tmp_path, {"iterations": 6})[:2] == (0, [])  # nothing left to do: run it whole
    (tmp_path / "checkpoint.json").write_text(json.dumps({"iteration": 6, "total": 31, "scale": 48}))
    assert resume_point(tmp_path, {"iterations": 20}) == (6, rows[:6], {"iteration": 6, "total": 31, "scale": 48})
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    assert resume_point(tmp_path, {"iterations": 20})[:2] == (0, [])  # rows missing: start afresh
