"""The shop's mix ramping from 10% to the full rate over `--shakeout-ramp` s, then steady.

Runs on its own: `locust -f loadprofiles/ramp.py --headless --host http://127.0.0.1:PORT`.
Options and defaults: `locust -f loadprofiles/ramp.py --shakeout-help` (section "ShakeOut
load") or docs/load.md; each is also a SHAKEOUT_* environment variable. Locust's `-t` is the
run length when `--shakeout-duration` is not given; `-u`/`-r` are refused (`--shakeout-rate`
sets the load). Under ShakeOut, `shakeout.load` starts it and reads every request.
"""

from __future__ import annotations

from typing import Any

from _shop import Shopper  # noqa: F401  (the user class Locust runs)

from shakeout.loadworker.shapes import Ramp
from shakeout.loadworker.users import ShakeoutShape


class RampShape(ShakeoutShape):
    """The shop's mix ramping from 10% to the full rate over `--shakeout-ramp` s, then steady."""

    def build(self, options: Any) -> Ramp:
        """The shape from the parsed options."""
        return Ramp(options.shakeout_rate, options.shakeout_duration, ramp_s=options.shakeout_ramp)
