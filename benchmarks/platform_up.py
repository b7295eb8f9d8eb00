"""Benchmark: time from `platform up` to every replica ready, and `down` to nothing left.

Run with `tox -e bench` (or `python benchmarks/platform_up.py --runs 5`). Prints one line per run
and the median; the goal from the walking-skeleton issue is under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from shakeout.platform import lifecycle

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", type=Path, default=ROOT / "targets" / "local.yaml")
    args = parser.parse_args()
    os.environ["SHAKEOUT_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="shakeout-bench-")
    ups, downs = [], []
    for i in range(args.runs):
        started = time.perf_counter()
        state, _ = lifecycle.up(args.target, owner_pid=os.getpid())
        ups.append(time.perf_counter() - started)
        replicas = len(state.replica_pids)
        started = time.perf_counter()
        lifecycle.down(state.target)
        downs.append(time.perf_counter() - started)
        print(
            f"run {i + 1}: {replicas} replicas ready in {ups[-1]:.2f} s, down in {downs[-1]:.2f} s"
        )
    print(
        f"platform up → all ready: median {statistics.median(ups):.2f} s "
        f"(min {min(ups):.2f}, max {max(ups):.2f}); down: median {statistics.median(downs):.2f} s; "
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
