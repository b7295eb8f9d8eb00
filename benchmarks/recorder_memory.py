"""Benchmark: the harness's memory for a one-hour run stays bounded (per-second histograms).

Feeds the Recorder one simulated hour of the shop mix (default 300 requests per second over
four journeys, latencies spread over 1-300 ms) in one-second batches, as the load monitor does,
and reports the traced memory of the recorder against the memory the raw records would take.
Run with `tox -e bench -- recorder` or `python benchmarks/recorder_memory.py`.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc

from shakeout.measure import Recorder, RequestRecord

T0 = 1_800_000_000.0
JOURNEYS = ["browse", "product", "cart", "checkout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--rate", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    tracemalloc.start()
    recorder = Recorder()
    started = time.perf_counter()
    checkpoints = {args.seconds // 4, args.seconds // 2, args.seconds - 1}
    for second in range(args.seconds):
        batch = []
        for i in range(args.rate):
            due = T0 + second + i / args.rate
            latency = rng.uniform(0.001, 0.3)
            batch.append(
                RequestRecord(due, due, due + latency, rng.choice(JOURNEYS), "GET", 200, None)
            )
        recorder.add_all(batch)
        if second in checkpoints:
            gc.collect()  # hdrh histograms hold reference cycles: count what is really kept
            current, _ = tracemalloc.get_traced_memory()
            print(f"after {second + 1:5d} s: recorder {current / 2**20:7.1f} MiB")
    elapsed = time.perf_counter() - started
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    total = args.seconds * args.rate
    sample = RequestRecord(T0, T0, T0 + 0.1, "checkout", "GET", 200, None)
    tracemalloc.stop()
    query = time.perf_counter()
    stats = recorder.stats("checkout")
    query = time.perf_counter() - query
    raw_mib = total * (sample.__sizeof__() + 8) / 2**20
    print(
        f"{total} records over {args.seconds} s at {args.rate} rps: recorder "
        f"{current / 2**20:.1f} MiB (peak before collection {peak / 2**20:.1f} MiB) vs >= "
        f"{raw_mib:.0f} MiB to keep the raw records; "
        f"{total / elapsed:,.0f} records/s accounted; whole-run checkout p95 "
        f"{stats.p95_ms:.1f} ms answered in {query:.2f} s"
    )


if __name__ == "__main__":
    main()
