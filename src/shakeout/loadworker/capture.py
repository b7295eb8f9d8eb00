"""Record every request of this Locust process for ShakeOut (imported by load profiles).

When ``SHAKEOUT_RECORDS`` names a file, each request becomes one JSON line, written as the
request completes (line-buffered, so a killed Locust loses at most the request in flight):

    [started_at, ended_at, name, method, status, error, service, version, zone, replica, order]

Times are Unix seconds with microsecond resolution; ``ended_at - started_at`` is Locust's own
``response_time`` (a ``perf_counter`` difference), not rounded. ``status`` is 0 when no response
arrived. The last five fields come from the ``X-Shakeout-*`` and ``X-Order-Id`` response headers.
Without ``SHAKEOUT_RECORDS`` this module does nothing, so profiles also run under plain Locust.
"""

from __future__ import annotations

import json
import os
from typing import Any

from locust import events

_PATH = os.environ.get("SHAKEOUT_RECORDS")
_out = open(_PATH, "a", buffering=1, encoding="utf-8") if _PATH else None  # noqa: SIM115
_HEADERS = (
    "x-shakeout-service",
    "x-shakeout-version",
    "x-shakeout-zone",
    "x-shakeout-replica",
    "x-order-id",
)


def _error_kind(exception: BaseException | None, status: int) -> str | None:
    if exception is None:
        return None
    if status:
        return f"HTTP {status}"
    return type(exception).__name__


def _record(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    if _out is None:
        return
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None) or {}
    start = start_time if start_time is not None else 0.0
    row = [
        round(start, 6),
        round(start + response_time / 1000.0, 6),
        name,
        request_type,
        status,
        _error_kind(exception, status),
        *(headers.get(h) for h in _HEADERS),
    ]
    _out.write(json.dumps(row, separators=(",", ":")) + "\n")


def _close(**_: Any) -> None:
    if _out is not None:
        _out.flush()


events.request.add_listener(_record)
events.quitting.add_listener(_close)
