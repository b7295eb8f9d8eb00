"""ShakeOut's driver on a trivial endpoint: one journey, ``GET /``, at a steady rate.

Used by the load benchmarks through :class:`shakeout.load.LoadRun` (full per-request capture).
For "as fast as possible" in the closed model, give a huge rate and ``user_rps = rate / users``:
the shape then asks for ``users`` users whose pacing interval (``users / rate``) is nanoseconds,
so they never wait, as plain Locust's users with no ``wait_time``.
"""

from __future__ import annotations

from typing import Any

import _probe  # noqa: F401  (samples the request count; nothing per request)

from shakeout.loadworker.shapes import Steady
from shakeout.loadworker.users import ShakeoutShape, ShakeoutUser


def root(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """``GET /``."""
    user.client.get("/", name="root", context=context)


class Trivial(ShakeoutUser):
    """The only journey is ``GET /``."""

    journeys = [(1, root)]  # noqa: RUF012


class TrivialShape(ShakeoutShape):
    """A steady rate for the run's duration."""

    def build(self, options: Any) -> Steady:
        """The shape from the parsed options."""
        return Steady(options.shakeout_rate, options.shakeout_duration)
