"""What-if: plain Locust's user (``plain.py``) plus ShakeOut's per-request capture, nothing else.

``benchmarks/load_overhead.py --what-if`` runs it with ``--shakeout-records FILE``: the cost of
recording every request (``shakeout.loadworker.capture``) without ShakeOut's user logic.
"""

from __future__ import annotations

import _probe  # noqa: F401  (samples the request count; nothing per request)
from plain import Plain  # noqa: F401  (the user class Locust runs)

from shakeout.loadworker import capture  # noqa: F401  (records every request)
