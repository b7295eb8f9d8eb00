"""Benchmark: how late gevent wakes up the open model's scheduler, and what a spin would buy.

Run: ``python benchmarks/gevent_sleep_lag.py [--rate 100 --seconds 10]``.

The open model (``ShakeoutUser._open_loop``) sleeps until each request is due with
``gevent.sleep(due - now)``; the request is sent when the sleep returns, and its latency counts
from the due time, so any lateness of the wake-up is added to the measured latency. This script
does the same schedule with no request at all and reports the lateness (now - due at wake-up)
and the CPU it cost, for the current way and for "sleep until ``margin`` before the due time, then
yield (``gevent.sleep(0)``) until it is due". Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import resource
import time

import gevent
from _bench import machine, percentile


def schedule(rate: float, seconds: float, margin_s: float) -> tuple[list[float], float]:
    """Lateness of each wake-up in ms, and the CPU used as a fraction of one core."""
    interval = 1.0 / rate
    lags: list[float] = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.time()
    due = began + interval
    for _ in range(int(rate * seconds)):
        delay = due - time.time() - margin_s
        if delay > 0:
            gevent.sleep(delay)
        if margin_s > 0:
            while time.time() < due:
                gevent.sleep(0)
        lags.append((time.time() - due) * 1000.0)
        due += interval
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return sorted(lags), used / (time.time() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {machine()}; gevent {gevent.__version__}, loop {gevent.config.loop}")
    for label, margin in (("gevent.sleep(due - now)", 0.0), ("sleep, then yield 1.5 ms", 0.0015)):
        lags, cpu = schedule(args.rate, args.seconds, margin)
        print(
            f"{label:26s} at {args.rate:g}/s: lateness p50 {percentile(lags, 50):.3f}  "
            f"p99 {percentile(lags, 99):.3f}  max {lags[-1]:.3f} ms;  CPU {cpu:.0%} of a core"
        )


if __name__ == "__main__":
    main()
