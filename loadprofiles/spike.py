"""The shop's mix with a spike: 2x the rate for `--shakeout-window` s from `--shakeout-at`.

Runs on its own: `locust -f loadprofiles/spike.py --headless --host http://127.0.0.1:PORT`.
Options and defaults: `locust -f loadprofiles/spike.py --shakeout-help` (section "ShakeOut
load") or docs/load.md; each is also a SHAKEOUT_* environment variable. Locust's `-t` is the
run length when `--shakeout-duration` is not given; `-u`/`-r` are refused (`--shakeout-rate`
sets the load). Under ShakeOut, `shakeout.load` starts it and reads every request.
"""

from __future__ import annotations

from typing import Any

from _shop import Shopper  # noqa: F401  (the user class Locust runs)

from shakeout.loadworker.shapes import Spike
from shakeout.loadworker.users import ShakeoutShape


class SpikeShape(ShakeoutShape):
    """The shop's mix with a spike: 2x the rate for `--shakeout-window` s from `--shakeout-at`."""

    def build(self, options: Any) -> Spike:
        """The shape from the parsed options."""
        return Spike(
            options.shakeout_rate,
            options.shakeout_duration,
            factor=options.shakeout_factor or Spike.factor,
            at_s=options.shakeout_at,
            window_s=options.shakeout_window,
        )
