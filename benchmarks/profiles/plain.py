"""Plain Locust: a FastHttpUser hitting ``GET /`` with no wait time (the overhead baseline).

Run by ``benchmarks/load_overhead.py`` as
``python -m locust -f benchmarks/profiles/plain.py --headless -u N -r N -t 10s --host URL``.
"""

from __future__ import annotations

import _probe  # noqa: F401  (samples the request count; nothing per request)
from locust import task  # noqa: TID251 (runs inside Locust)
from locust.contrib.fasthttp import FastHttpUser  # noqa: TID251


class Plain(FastHttpUser):
    """One request after the other, as fast as the user can go (Locust's default wait is 0)."""

    @task
    def root(self) -> None:
        """``GET /``."""
        self.client.get("/", name="root")
