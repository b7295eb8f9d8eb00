"""The shop's mix over a compressed day: from 30% to 100% of the rate and back each period.

Runs on its own: `locust -f loadprofiles/diurnal.py --headless --host http://127.0.0.1:PORT`.
Options and defaults: `locust -f loadprofiles/diurnal.py --shakeout-help` (section "ShakeOut
load") or docs/load.md; each is also a SHAKEOUT_* environment variable. Locust's `-t` is the
run length when `--shakeout-duration` is not given; `-u`/`-r` are refused (`--shakeout-rate`
sets the load). Under ShakeOut, `shakeout.load` starts it and reads every request.
"""

from __future__ import annotations

from typing import Any

from _shop import Shopper  # noqa: F401  (the user class Locust runs)

from shakeout.loadworker.shapes import Diurnal
from shakeout.loadworker.users import ShakeoutShape


class DiurnalShape(ShakeoutShape):
    """The shop's mix over a compressed day: from 30% to 100% of the rate and back each period."""

    def build(self, options: Any) -> Diurnal:
        """The shape from the parsed options."""
        return Diurnal(
            options.shakeout_rate, options.shakeout_duration, period_s=options.shakeout_period
        )
