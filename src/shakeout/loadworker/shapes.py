"""Load shapes as rates over time, shared by the open and the closed model, and their options.

A shape answers ``rate_rps(t)`` for ``t`` seconds into the run and knows its ``duration_s``.
The open model launches requests at that rate; the closed model turns it into a user count
(see :class:`ShakeoutShape`). Every shape is parameterised from the command line or the
environment (``--shakeout-rate`` / ``SHAKEOUT_RATE`` and so on): :data:`OPTIONS` lists them
with their defaults (the shapes' own), which ``shakeout.loadworker.users`` adds to Locust's
parser. This module imports nothing from Locust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_DURATION_S = 60.0
"""The run length when neither ``--shakeout-duration`` nor Locust's ``-t`` is given."""


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


@dataclass(frozen=True)
class Option:
    """One ``--shakeout-*`` option: its environment variable, default and help text (where
    ``DEFAULT`` stands for the default as written)."""

    flag: str
    env: str
    default: float | int | str | None
    kind: type
    text: str
    metavar: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def shown_default(self) -> str:
        """The default as the help and docs/load.md write it (``20``, not ``20.0``)."""
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    @property
    def help(self) -> str:
        """The help text, default and environment variable included (``%`` escaped for
        argparse)."""
        text = self.text.replace("DEFAULT", f"default: {self.shown_default}")
        return f"{text.replace('%', '%%')} [env {self.env}]"


OPTIONS = (
    Option("--shakeout-rate", "SHAKEOUT_RATE", 20.0, float,
           "base rate in requests per second (DEFAULT)", "<rps>"),
    Option("--shakeout-duration", "SHAKEOUT_DURATION_S", None, float,
           f"run length in seconds (default: -t/--run-time if given, else "
           f"{DEFAULT_DURATION_S:g})", "<s>"),
    Option("--shakeout-model", "SHAKEOUT_MODEL", "open", str, "load model (DEFAULT)",
           choices=("open", "closed")),
    Option("--shakeout-arrivals", "SHAKEOUT_ARRIVALS", "constant", str,
           "open model: arrivals (DEFAULT)", choices=("constant", "poisson")),
    Option("--shakeout-workers", "SHAKEOUT_WORKERS", 1, int,
           "worker processes sharing the rate (DEFAULT)", "<int>"),
    Option("--shakeout-user-rps", "SHAKEOUT_USER_RPS", 2.0, float,
           "closed model: rate per user, users = rate / this (DEFAULT)", "<rps>"),
    Option("--shakeout-max-in-flight", "SHAKEOUT_MAX_IN_FLIGHT", 2000, int,
           "open model: outstanding requests per worker before arrivals are dropped (DEFAULT)",
           "<int>"),
    Option("--shakeout-max-requests", "SHAKEOUT_MAX_REQUESTS", 10_000_000, int,
           "hard cap on requests per run (DEFAULT)", "<int>"),
    Option("--shakeout-at", "SHAKEOUT_AT_S", Spike.at_s, float,
           "spike/surge: seconds into the run when it starts (DEFAULT)", "<s>"),
    Option("--shakeout-window", "SHAKEOUT_WINDOW_S", Spike.window_s, float,
           "spike: seconds it lasts (DEFAULT; a surge lasts to the end)", "<s>"),
    Option("--shakeout-factor", "SHAKEOUT_FACTOR", 0.0, float,
           f"spike/surge: rate multiplier (DEFAULT, meaning the profile's own: {Spike.factor:g} "
           f"for spike, {Surge.factor:g} for surge)", "<x>"),
    Option("--shakeout-period", "SHAKEOUT_PERIOD_S", Diurnal.period_s, float,
           f"diurnal: seconds of one compressed day, from {Diurnal.low_fraction:.0%} of the "
           "rate to all of it and back (DEFAULT)", "<s>"),
    Option("--shakeout-ramp", "SHAKEOUT_RAMP_S", Ramp.ramp_s, float,
           f"ramp: seconds from {Ramp.start_fraction:.0%} of the rate to all of it (DEFAULT)",
           "<s>"),
)  # fmt: skip


def settle_run_length(options: Any) -> str:
    """Set ``options.shakeout_duration`` from itself and Locust's ``-t/--run-time`` (the shorter
    when both are given, ``DEFAULT_DURATION_S`` when neither is); say where it came from.

    Idempotent: the value it sets is the value a second call computes."""
    duration = options.shakeout_duration
    run_time: Any = getattr(options, "run_time", None)  # Locust's, whole seconds; 0 or None: unset
    if duration is None and not run_time:
        options.shakeout_duration = DEFAULT_DURATION_S
        return "the default (set --shakeout-duration or -t/--run-time)"
    if duration is None:
        options.shakeout_duration = float(run_time)
        return "-t/--run-time (--shakeout-duration not given)"
    if run_time and run_time < duration:
        options.shakeout_duration = float(run_time)
        return f"-t/--run-time, shorter than --shakeout-duration {duration:g}"
    if run_time:
        return f"--shakeout-duration, not longer than -t/--run-time {run_time:g}"
    return "--shakeout-duration"
