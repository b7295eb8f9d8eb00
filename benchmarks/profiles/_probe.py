"""A once-every-half-second sample of Locust's own request count, for the overhead benchmark.

Imported by both benchmark profiles (ShakeOut's and plain Locust's) so that both rates are
measured the same way and at no per-request cost: a greenlet appends ``time count failures users``
(Locust's own totals) to the file named by ``BENCH_PROBE_FILE`` every 0.5 s; nothing happens
without it. It also bounds the request count: past ``BENCH_MAX_REQUESTS`` it quits the runner.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gevent
from locust import events  # noqa: TID251 (runs inside Locust)
from locust.env import Environment  # noqa: TID251

PERIOD_S = 0.5


def _sample(environment: Environment, path: str, cap: int) -> None:
    with open(path, "a", encoding="utf-8") as out:
        while True:
            gevent.sleep(PERIOD_S)
            count = environment.stats.total.num_requests
            failures = environment.stats.total.num_failures
            runner = environment.runner
            users = runner.user_count if runner is not None else 0
            out.write(f"{time.time():.6f} {count} {failures} {users}\n")
            out.flush()
            if count >= cap and runner is not None:
                runner.quit()
                return


def _init(environment: Environment, **_: Any) -> None:
    path = os.environ.get("BENCH_PROBE_FILE", "")
    if path:
        cap = int(os.environ.get("BENCH_MAX_REQUESTS", "2000000"))
        gevent.spawn(_sample, environment, path, cap)


events.init.add_listener(_init)  # type: ignore[no-untyped-call]
