"""The shop's journey mix at a steady rate (`--shakeout-rate`) for `--shakeout-duration` s.

Runs on its own: `locust -f loadprofiles/steady.py --headless --host http://127.0.0.1:PORT`.
Options and defaults: `locust -f loadprofiles/steady.py --shakeout-help` (section "ShakeOut
load") or docs/load.md; each is also a SHAKEOUT_* environment variable. Locust's `-t` is the
run length when `--shakeout-duration` is not given; `-u`/`-r` are refused (`--shakeout-rate`
sets the load). Under ShakeOut, `shakeout.load` starts it and reads every request.
"""

from __future__ import annotations

from typing import Any

from _shop import Shopper  # noqa: F401  (the user class Locust runs)

from shakeout.loadworker.shapes import Steady
from shakeout.loadworker.users import ShakeoutShape


class SteadyShape(ShakeoutShape):
    """The shop's journey mix at a steady rate (`--shakeout-rate`) for `--shakeout-duration` s."""

    def build(self, options: Any) -> Steady:
        """The shape from the parsed options."""
        return Steady(options.shakeout_rate, options.shakeout_duration)
