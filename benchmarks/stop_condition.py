"""Benchmark: from a stop condition's breach to the fault rolled back (goal: under 2 s).

Against the fragile embedded platform (no readiness gate, no automatic rollback), a drill puts
a crash-looping release of orders under 40 rps of the shop mix with the stop condition "error
rate above 10% over 2 s". The breach instant is computed from the request records with the
harness's own rule: the first instant it held on the requests ended by then. The rollback
instant is the end of the experiment's rollback in the Chaos Toolkit journal.

Run with `python benchmarks/stop_condition.py [--runs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from shakeout.platform import lifecycle

ROOT = Path(__file__).resolve().parent.parent
FRAGILE = ROOT / "targets" / "local-fragile.yaml"
THRESHOLD, WINDOW_S = 0.10, 2.0
FEATURE = f"""Feature: stop condition benchmark
  Scenario: a bad release under a stop condition
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And any fault is aborted if the error rate exceeds {THRESHOLD:.0%} over {WINDOW_S:.0f} seconds
    And a baseline of 2 seconds
    When a release of "orders" that crashes on start takes 50% of traffic
    Then the "checkout" journey's error rate stays below 1%
"""


def breach_time(records: Path) -> float | None:
    """The first instant at which the harness's own rule held on the requests finished so far.

    The rule (``Drill._stop_condition_breached``): requests due in the whole seconds from
    ``now - window`` to the current one, at least 10 of them, more than the threshold failed.
    Evaluated here every 5 ms with only the requests ended by then: the earliest moment the
    harness could have known.
    """
    rows = []
    for line in records.read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        rows.append((float(f[2]), float(f[0]), bool(f[6])))
    rows.sort()
    if not rows:
        return None
    # Every 5 ms (the harness polls every 50 ms): the window's edges move with the clock, not
    # only at request ends.
    now, end, i = rows[0][0], rows[-1][0], 0
    while now <= end:
        while i < len(rows) and rows[i][0] <= now:
            i += 1
        lo, hi = int(now - WINDOW_S), int(now) + 1
        seen = [failed for _, due, failed in rows[:i] if lo <= due < hi]
        if len(seen) >= 10 and sum(seen) / len(seen) > THRESHOLD:
            return now
        now += 0.005
    return None


def run_once(work: Path) -> tuple[float, float, float]:
    """One drill; returns (breach → abort sent, abort → rolled back, breach → rolled back)."""
    (work / "features").mkdir(parents=True)
    (work / "features" / "stop.feature").write_text(FEATURE, encoding="utf-8")
    (work / "conftest.py").write_text(
        'pytest_plugins = ["steps.plugin", "steps.drill_steps"]\n', encoding="utf-8"
    )
    (work / "test_stop.py").write_text(
        "from pytest_bdd import scenarios\n\nscenarios('features')\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHAKEOUT_REPORTS_DIR": str(work / "reports")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(work),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(work),
            "--target",
            str(FRAGILE),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
        timeout=180,
    )
    (run_dir,) = (work / "reports" / "runs").iterdir()
    fault = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["faults"][0]
    breach = breach_time(run_dir / "requests.tsv")
    if breach is None or not fault["abort_reason"]:
        raise SystemExit(f"no breach or no abort in {run_dir}: {fault}")
    return (
        fault["aborted_at"] - breach,
        fault["rolled_back_at"] - fault["aborted_at"],
        fault["rolled_back_at"] - breach,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["SHAKEOUT_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="shakeout-stop-")
    state, _ = lifecycle.up(FRAGILE, owner_pid=os.getpid())
    totals = []
    try:
        for i in range(args.runs):
            detect, rollback, total = run_once(Path(tempfile.mkdtemp(prefix=f"stop-{i}-")))
            totals.append(total)
            print(
                f"run {i + 1}: breach → abort sent {detect:.2f} s, abort → rolled back "
                f"{rollback:.2f} s, breach → rolled back {total:.2f} s"
            )
    finally:
        lifecycle.down(state.target)
    verdict = "met" if max(totals) < 2.0 else "NOT met"
    print(
        f"breach → rolled back: median {statistics.median(totals):.2f} s, max {max(totals):.2f} s;"
        f" goal < 2 s: {verdict}"
    )


if __name__ == "__main__":
    main()
