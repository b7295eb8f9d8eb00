"""Budget benchmark: wall-clock time of the @quick subset (goal <= 3 min, the pull-request gate)
and of the whole drill library (goal <= 15 min, the nightly budget), as a user runs them.

Each run is ``python -m pytest steps -m quick`` / ``python -m pytest steps`` in its own
process, against the embedded platform that run starts and stops itself (so platform start-up
counts), with its own runtime and reports folders. Prints one line per run and a summary.

Usage: python benchmarks/drill_budget.py [--only quick|library]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import ROOT, BenchError, machine

GOALS_S = {"quick": 180.0, "library": 900.0}


def run(name: str) -> tuple[float, str]:
    """Run one subset; return its wall-clock seconds and pytest's summary line."""
    command = [sys.executable, "-m", "pytest", "steps", "-q", "-p", "no:cacheprovider"]
    if name == "quick":
        command += ["-m", "quick"]
    with tempfile.TemporaryDirectory(prefix=f"shakeout-budget-{name}-") as tmp:
        env = {
            **os.environ,
            "SHAKEOUT_RUNTIME_DIR": str(Path(tmp) / "runtime"),
            "SHAKEOUT_REPORTS_DIR": str(Path(tmp) / "reports"),
        }
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=GOALS_S[name] * 2,
            check=False,
        )
        took = time.monotonic() - started
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", result.stdout, re.M)
    summary = found[-1] if found else "no pytest summary"
    if result.returncode != 0:
        raise BenchError(f"{name}: the drills did not pass ({summary}):\n{result.stdout[-3000:]}")
    return took, summary


def main() -> int:
    """Run the subsets and print the figures for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(GOALS_S), default=None)
    args = parser.parse_args()
    print(f"drill budgets on {machine()}, {time.strftime('%Y-%m-%d')}")
    for name in [args.only] if args.only else ["quick", "library"]:
        took, summary = run(name)
        goal = GOALS_S[name]
        verdict = "within" if took <= goal else "OVER"
        print(f"{name:8s} {took:6.0f} s ({summary}); goal <= {goal:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
