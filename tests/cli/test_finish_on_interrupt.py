"""Ctrl-C in ``restyle run``: once the picture is showing progress, the first Ctrl-C finishes the run
with the image so far (written, with its record saying so); a second one, or one before any
progress, stops without writing anything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from shared_helpers import EXAMPLES

MAIN = "import sys; from restyle.cli import main; sys.exit(main(sys.argv[1:]))"


def _start(out: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "run", str(EXAMPLES / "chelsea.jpg"),
                             str(EXAMPLES / "starry_night.jpg"), "--size", "64", "-n", "5000", "--device", "cpu",
                             "--precision", "fp32", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read(1):
            seen.append(chunk)

    threading.Thread(target=read, daemon=True).start()
    return proc, seen


def _wait_for(seen: list[str], text: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in "".join(seen):
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s: {''.join(seen)[-300:]}"
        time.sleep(0.05)


def test_ctrl_c_during_a_run_writes_the_picture_so_far_and_says_why_it_stopped(tmp_path):
    out = tmp_path / "out.png"
    proc, seen = _start(out)
    _wait_for(seen, "loss ")  # the progress bar shows a row: the run is optimising
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0
    _wait_for(seen, "wrote", timeout=5)
    text = "".join(seen)
    assert "finishing now with the image so far" in text
    from restyle import read_run_record

    record = read_run_record(out)
    assert record["stop_reason"].startswith("finished on request at iteration ")
    rows = (tmp_path / "out.losses.csv").read_text().splitlines()
    assert 2 <= len(rows) < 5000  # the header, then the rows up to the request
    assert json.dumps(record)  # a whole record, not a partial file


def test_a_second_ctrl_c_stops_without_writing_or_lets_the_writing_finish_never_half(tmp_path):
    out = tmp_path / "out.png"
    proc, seen = _start(out)
    _wait_for(seen, "loss ")
    proc.send_signal(signal.SIGINT)
    _wait_for(seen, "finishing now", timeout=30)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    written = sorted(p.name for p in tmp_path.iterdir())
    if code == 130:  # the second came while it was still optimising
        assert written == []
    else:  # it came while the outputs were being written: they are written whole
        assert code == 0 and written == ["out.losses.csv", "out.losses.png", "out.png"]


def test_a_time_limit_finishes_the_run_with_the_picture_it_has_then(tmp_path, capsys):
    from restyle import read_run_record
    from restyle.cli import main

    out = tmp_path / "out.png"
    code = main(["run", str(EXAMPLES / "chelsea.jpg"), str(EXAMPLES / "starry_night.jpg"), "--size", "48",
                 "-n", "100000", "--device", "cpu", "--precision", "fp32", "--time-limit", "1.5", "-q", "-o", str(out)])
    assert code == 0
    reason = read_run_record(out)["stop_reason"]
    assert reason.startswith("finished on request at iteration ")
    assert reason.endswith(": the 1.5 s time limit (--time-limit)")
    last = (tmp_path / "out.losses.csv").read_text().splitlines()[-1]
    assert 1.5 <= float(last.split(",")[-1]) < 60  # the row it finished at came after the limit, not long after


def test_a_time_limit_that_is_not_a_positive_number_is_refused_in_one_line(tmp_path, capsys):
    from restyle.cli import main

    for bad in ("0", "-3", "soon", "inf"):
        try:
            code = main(["run", "a.jpg", "b.jpg", "--time-limit", bad, "-o", str(tmp_path / "out.png")])
        except SystemExit as exit_:  # refused by the parser or after it: exit 2 either way
            code = exit_.code
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--time-limit" in err[0] and bad in err[0]
    assert not list(tmp_path.iterdir())
