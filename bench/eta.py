"""How honest is the time left that the progress bar, the page and the API show?

    python bench/eta.py bench/panel/results/ttq/panel512-stages.jsonl --config auto
    python bench/eta.py bench/panel/results/ttq/*.jsonl --config auto
    python bench/eta.py bench/panel/results/ttq/lead256.jsonl --config lead6 --lead
    python bench/eta.py bench/panel/results/ttq/panel.jsonl --config today --truncate   # -n 300 runs cut at the 2% stop

Replays the engine's estimate (:meth:`restyle.engine.stopping.Schedule.estimate`, of the code
under ``--src``) on the history rows that ``bench/ttq.py`` recorded (each row's total loss, stage
size and wall seconds), row by row as the run made them, and compares it with the time that was
actually left. Prints, per file and size, the ratio estimate / actual at 10, 25, 50, 75 and 90%
of each run's time (median and range over the runs), and the median of ``|log(ratio)|`` over
every row between 5% and 90% of the run (0 is exact; 0.1 is about 10% off), and how far it strays
from a quarter of the run on: each run's furthest ratio from 25% to 90% of its time, the lowest and
highest of those, and how many runs were at some row under half or over twice the time left.
With ``--truncate`` the records are one-stage ``-n`` runs, each cut where the rule would have
stopped it (a run under the rule is exactly the first steps of the forced run): five times as
many runs to replay as the automatic-stop records.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9)


def truncated(record: dict[str, Any], tolerance: float) -> dict[str, Any] | None:
    """A one-stage ``-n N`` run cut at the row where the automatic stop (``tolerance``) would have
    ended it: under the rule a run is exactly the first steps of the forced one. None when the
    rule is not reached within the run."""
    from restyle.engine.stopping import Schedule

    if len(set(record["scales"])) != 1:
        return None
    rule = Schedule(sorted(set(record["scales"])), None, tolerance).rules[0]
    assert rule is not None
    totals = record["losses"]
    for t in range(1, len(totals) - 1):
        if rule.reached(totals[: t + 1]):
            return {**record, **{k: record[k][: t + 1] for k in ("losses", "scales", "row_seconds")}}
    return None


def replay(record: dict[str, Any], tolerance: float, lead: bool = False) -> list[tuple[float, float, float]]:
    """(share of the run's time done, seconds left estimated, seconds actually left) at each row;
    ``lead``: the run began with a lead stage (``--lead-stage``)."""
    from restyle.engine.stopping import Schedule

    scales, totals, seconds = record["scales"], record["losses"], record["row_seconds"]
    stages = sorted(set(scales))
    plan = Schedule(stages[-1:], None, tolerance, lead=True) if lead else Schedule(stages, None, tolerance)
    assert plan.sizes == stages, f"the record's stages {stages} are not the schedule's {plan.sizes}"
    end = seconds[-1]
    points = []
    for k, size in enumerate(stages):
        rows = [i for i, s in enumerate(scales) if s == size]
        if len(rows) < 2:
            continue
        # the stage began one step before its first row was timed
        began = seconds[rows[0]] - (seconds[rows[1]] - seconds[rows[0]])
        for i in rows[1:]:
            _, left = plan.estimate(k, rows[0], totals[rows[0]: i + 1], seconds[i] - began)
            if left is not None and end > seconds[i]:
                points.append((seconds[i] / end, left, end - seconds[i]))
    return points


def report(records: list[dict[str, Any]], tolerance: float, lead: bool = False) -> str:
    by_fraction: dict[float, list[float]] = {f: [] for f in FRACTIONS}
    errors, worst = [], []
    for rec in records:
        points = replay(rec, tolerance, lead)
        if not points:
            continue
        # the furthest the estimate strays from a quarter of the run's time on (where it is read)
        later = [left / actual for done, left, actual in points if 0.25 <= done <= 0.9]
        worst.append(max(later, key=lambda r: abs(math.log(max(r, 1e-3)))) if later else 1.0)
        for f in FRACTIONS:
            done, left, actual = min(points, key=lambda p: abs(p[0] - f))
            by_fraction[f].append(left / actual)
        errors += [abs(math.log(max(left, 1e-3) / actual)) for done, left, actual in points if 0.05 < done < 0.9]
    cells = [f"{f:.0%}: {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for f, v in by_fraction.items() if v]
    off = sum(not 0.5 <= r <= 2 for r in worst)
    return (f"median |log| {statistics.median(errors):.3f}; " + "; ".join(cells)
            + f"; from 25% to 90%: furthest {min(worst):.2f} and {max(worst):.2f}, {off} of {len(worst)} runs"
            " at some row under 0.5x or over 2x") if errors else "no rows"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="results.jsonl files of bench/ttq.py")
    ap.add_argument("--config", default="auto", help="the cells' config (label) to replay (automatic-stop runs)")
    ap.add_argument("--tolerance", type=float, default=0.02, help="the runs' --stop-tolerance (0.015 for one-stage runs recorded before the 2%% rule)")
    ap.add_argument("--lead", action="store_true", help="the runs used --lead-stage")
    ap.add_argument("--truncate", action="store_true",
                    help="the runs are one-stage -n runs (e.g. --config today): cut each where the rule would stop it")
    ap.add_argument("--src", default=str(ROOT / "src"), help="the restyle source whose estimate is replayed")
    args = ap.parse_args()
    sys.path.insert(0, args.src)
    for path in args.files:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        records = [r for r in records if r.get("config") == args.config and "row_seconds" in r]
        if args.truncate:
            records = [c for c in (truncated(r, args.tolerance) for r in records) if c is not None]
        for size in sorted({r["size"] for r in records}):
            group = [r for r in records if r["size"] == size]
            print(f"{path.name} {size} px, {len(group)} runs: estimate / actual at a share of the run's time: "
                  f"{report(group, args.tolerance, args.lead)}")


if __name__ == "__main__":
    main()
