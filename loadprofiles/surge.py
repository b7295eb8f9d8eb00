"""The shop's mix with a sustained +50% surge from `--shakeout-at` on.

Runs on its own: `locust -f loadprofiles/surge.py --headless --host http://127.0.0.1:PORT`.
Options and defaults: `locust -f loadprofiles/surge.py --shakeout-help` (section "ShakeOut
load") or docs/load.md; each is also a SHAKEOUT_* environment variable. Locust's `-t` is the
run length when `--shakeout-duration` is not given; `-u`/`-r` are refused (`--shakeout-rate`
sets the load). Under ShakeOut, `shakeout.load` starts it and reads every request.
"""

from __future__ import annotations

from typing import Any

from _shop import Shopper  # noqa: F401  (the user class Locust runs)

from shakeout.loadworker.shapes import Surge
from shakeout.loadworker.users import ShakeoutShape


class SurgeShape(ShakeoutShape):
    """The shop's mix with a sustained +50% surge from `--shakeout-at` on."""

    def build(self, options: Any) -> Surge:
        """The shape from the parsed options."""
        return Surge(
            options.shakeout_rate,
            options.shakeout_duration,
            factor=options.shakeout_factor or Surge.factor,
            at_s=options.shakeout_at,
        )
