"""The request-record line: one named-column schema for the writer and every reader.

The load workers write one tab-separated line per request (``shakeout.loadworker.capture``);
the engine reads them back (``shakeout.measure.RequestRecord.from_line``). Both go through this
module, so a column is added, moved or renamed in one place. It imports nothing, because it is
loaded inside Locust's gevent-patched process too.
"""

from __future__ import annotations

IDENTITY_HEADERS: dict[str, str] = {
    "x-shakeout-service": "service",
    "x-shakeout-version": "version",
    "x-shakeout-zone": "zone",
    "x-shakeout-replica": "replica",
    "x-order-id": "order_id",
}
"""Response headers recorded with each request -> their column (in column order)."""

COLUMNS: tuple[str, ...] = (
    "due",  # when the request was scheduled (Unix seconds, microseconds)
    "started_at",  # when it was sent
    "ended_at",  # when its response ended
    "name",  # the request's name (the journey's step)
    "method",  # HTTP method, or DROP for a request the open model could not launch
    "status",  # HTTP status, 0 when no response arrived
    "error",  # empty on success
    *IDENTITY_HEADERS.values(),
)
"""The columns of a record line, in order."""


def format_line(
    due: float,
    started_at: float,
    ended_at: float,
    name: str,
    method: str,
    status: int,
    error: str,
    identity: str,
) -> str:
    """One record line. ``identity`` is the identity columns already joined by tabs (see
    :data:`IDENTITY_HEADERS`; the writer builds it in one pass over the response headers)."""
    return (
        f"{due:.6f}\t{started_at:.6f}\t{ended_at:.6f}\t{name}\t{method}\t{status}\t{error}\t"
        f"{identity}\n"
    )


def parse_line(line: str) -> dict[str, str]:
    """A record line's columns by name; ValueError for a line with another column count."""
    values = line.rstrip("\n").split("\t")
    if len(values) != len(COLUMNS):
        raise ValueError(f"a record line has {len(COLUMNS)} columns, this one {len(values)}")
    return dict(zip(COLUMNS, values, strict=True))
