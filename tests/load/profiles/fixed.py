"""Test profile: GET / at a steady rate (the journey is named ``get``)."""

from __future__ import annotations

from typing import Any

from shakeout.loadworker.shapes import Steady
from shakeout.loadworker.users import ShakeoutShape, ShakeoutUser


def get(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """One GET of the root."""
    user.client.get("/", name="get", context=context)


class Getter(ShakeoutUser):
    """Only GETs."""

    journeys = [(1, get)]  # noqa: RUF012


class SteadyShape(ShakeoutShape):
    """Steady rate."""

    def build(self, options: Any) -> Steady:
        """The shape."""
        return Steady(options.shakeout_rate, options.shakeout_duration)
