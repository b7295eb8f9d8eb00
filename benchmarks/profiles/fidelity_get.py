"""ShakeOut's driver against the ground-truth server (``benchmarks/fidelity.py``): ``GET /``.

Each request carries its client tag and its due time in the query string
(``/?c=so&due=1764000000.123456``, the due time as the record line writes it), so that the
benchmark can pair every record with the server's own record of the same request. The journey
is named ``root`` whatever the query.
"""

from __future__ import annotations

from typing import Any

from shakeout.loadworker.shapes import Steady
from shakeout.loadworker.users import ShakeoutShape, ShakeoutUser


def root(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """``GET /?c=so&due=...``."""
    user.client.get(f"/?c=so&due={context['due']:.6f}", name="root", context=context)


class Fidelity(ShakeoutUser):
    """The only journey is ``GET /``."""

    journeys = [(1, root)]  # noqa: RUF012


class FidelityShape(ShakeoutShape):
    """A steady rate for the run's duration."""

    def build(self, options: Any) -> Steady:
        """The shape from the parsed options."""
        return Steady(options.shakeout_rate, options.shakeout_duration)
