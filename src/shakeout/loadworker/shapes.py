"""Load shapes as rates over time, shared by the open and the closed model.

A shape answers ``rate_rps(t)`` for ``t`` seconds into the run and knows its ``duration_s``.
The open model launches requests at that rate; the closed model turns it into a user count
(see :class:`ShakeoutShape`). Every shape is parameterised from the command line or the
environment (``--shakeout-rate`` / ``SHAKEOUT_RATE`` and so on, see ``options``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """Constant rate: ``rate`` requests per second for ``duration_s``."""

    rate: float
    duration_s: float

    def rate_rps(self, t: float) -> float:
        """Target requests per second at ``t`` seconds into the run."""
        return self.rate if 0 <= t < self.duration_s else 0.0


@dataclass(frozen=True)
class Steady(Shape):
    """The same rate for the whole run."""


@dataclass(frozen=True)
class Ramp(Shape):
    """From ``start_fraction`` of the rate up to the full rate over ``ramp_s``, then steady."""

    ramp_s: float = 30.0
    start_fraction: float = 0.1

    def rate_rps(self, t: float) -> float:
        """Linear ramp, then the full rate."""
        if not 0 <= t < self.duration_s:
            return 0.0
        progress = min(1.0, t / self.ramp_s) if self.ramp_s > 0 else 1.0
        return self.rate * (self.start_fraction + (1 - self.start_fraction) * progress)


@dataclass(frozen=True)
class Spike(Shape):
    """The rate, times ``factor`` (2x by default) for ``window_s`` starting at ``at_s``."""

    factor: float = 2.0
    at_s: float = 10.0
    window_s: float = 10.0

    def rate_rps(self, t: float) -> float:
        """Base rate outside the window, ``factor`` times it inside."""
        if not 0 <= t < self.duration_s:
            return 0.0
        inside = self.at_s <= t < self.at_s + self.window_s
        return self.rate * (self.factor if inside else 1.0)


@dataclass(frozen=True)
class Surge(Spike):
    """A sustained +50% surge from ``at_s`` to the end of the run."""

    factor: float = 1.5
    window_s: float = math.inf


@dataclass(frozen=True)
class Diurnal(Shape):
    """A compressed day: a sine between ``low_fraction`` of the rate and the rate."""

    period_s: float = 60.0
    low_fraction: float = 0.3

    def rate_rps(self, t: float) -> float:
        """Trough at t=0, peak (the full rate) at half a period."""
        if not 0 <= t < self.duration_s:
            return 0.0
        phase = (1 - math.cos(2 * math.pi * t / self.period_s)) / 2
        return self.rate * (self.low_fraction + (1 - self.low_fraction) * phase)
