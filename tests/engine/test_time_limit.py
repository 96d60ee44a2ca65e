"""``--time-limit SECONDS``: a run (each picture of a batch, each frame of a video) finishes after
that many seconds with the picture it has then, as Finish now does, and says so in its record; the
automatic stop or ``-n`` may end it sooner; its progress never promises more time than the limit
leaves."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from restyle.config import Config
from restyle.engine import StyleTransfer
from restyle.engine.events import Progress
from restyle.engine.stopping import time_limited

FP32 = dict(device="cpu", precision="fp32")


def test_the_time_left_shown_is_never_past_the_limit():
    # (rows in all, seconds left, what is shown without a limit, rows made, seconds to the limit)
    assert time_limited(100, 10.0, 10.0, 40, 30.0) == (100, 10.0)  # the estimate ends first: shown as it is
    assert time_limited(100, 60.0, 60.0, 40, 30.0) == (70, 30.0)  # the limit first: the rows made by then
    assert time_limited(100, 60.0, None, 40, 30.0) == (70, 30.0)  # under -n too
    assert time_limited(100, 60.0, 60.0, 40, -1.0) == (40, 0.0)  # past it: this row is the last
    assert time_limited(100, None, None, 0, 30.0) == (100, None)  # nothing to go by yet
    assert time_limited(100, 0.0, 0.0, 99, -1.0) == (100, 0.0)  # at the estimate's end and past the limit


def test_a_time_limit_finishes_a_run_with_the_picture_it_has_then(content: Path, style: Path):
    events: list = []
    result = StyleTransfer(Config(**FP32, size=48, iterations=100_000, time_limit=1.0)).run(
        content, [style], on_event=events.append)
    assert result.stopped_early is None  # finished, not failed: the outputs are written, exit 0
    assert result.stop_reason.startswith("finished on request at iteration ")
    assert result.stop_reason.endswith(": the 1 s time limit (--time-limit)")
    last = result.history[-1]
    assert 1.0 <= last["seconds"] < 30  # the row it finished at came after the limit, not long after
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].iteration == last["iteration"]
    for event in progress[1:]:  # from the second row on there is a pace to go by
        assert event.eta is not None and event.eta <= max(0.0, 1.0 - event.seconds) + 1e-9
        assert event.total < 100_000


def test_the_rule_or_n_may_end_a_run_before_its_time_limit(content: Path, style: Path):
    result = StyleTransfer(Config(**FP32, size=48, iterations=5, time_limit=600)).run(content, [style])
    assert result.stop_reason == "ran the 5 iterations asked for"
    assert len(result.history) == 6


def test_each_picture_of_a_batch_gets_the_time_limit_and_its_record_says_so(content: Path, style: Path,
                                                                          style2: Path, tmp_path: Path):
    from restyle.cli import main
    from restyle.io.record import read_run_record

    out = tmp_path / "out"
    with contextlib.redirect_stderr(io.StringIO()):
        code = main(["batch", str(content), "--styles", str(style), str(style2), "-o", str(out), "--size", "32",
                     "-n", "100000", "--time-limit", "0.5", *("--precision", "fp32", "--device", "cpu")])
    assert code == 0
    written = sorted(out.glob("*.png"))
    written = [p for p in written if not p.name.endswith(".losses.png")]
    assert len(written) == 2
    for path in written:
        assert read_run_record(path)["stop_reason"].endswith(": the 0.5 s time limit (--time-limit)")
