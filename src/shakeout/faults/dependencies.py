"""A dependency that fails or slows down: every replica replaced by a degraded version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from shakeout.faults._base import Fault, Params, Reach, on, whole
from shakeout.placement import Placement

Seconds = Annotated[float, Field(gt=0.0)]


class ErrorsParams(Params):
    service: str
    error_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    duration_s: Seconds


class DependencyErrors(Fault[ErrorsParams]):
    """A service answers a share of its requests with errors for a while."""

    word = "dependency-errors"
    phrase = '"{service}" answers {percent:d}% errors for {seconds:d} seconds'
    experiments = on(
        local="scenarios/dependency_errors.json",
        kubernetes="scenarios/kubernetes/dependency_errors.json",
    )

    def params(self, args: Mapping[str, Any]) -> ErrorsParams:
        return ErrorsParams(
            service=args["service"],
            error_rate=args["percent"] / 100.0,
            duration_s=float(args["seconds"]),
        )

    def reach(self, placement: Placement, params: ErrorsParams) -> Reach:
        return whole(placement, params.service, "replaced by a version failing a share of requests")


class LatencyParams(Params):
    service: str
    latency_ms: Annotated[int, Field(ge=0, le=600_000)]
    duration_s: Seconds


class DependencyLatency(Fault[LatencyParams]):
    """A service answers slower for a while."""

    word = "dependency-latency"
    phrase = '"{service}" answers {ms:d} ms slower for {seconds:d} seconds'
    experiments = on(
        local="scenarios/dependency_latency.json",
        kubernetes="scenarios/kubernetes/dependency_latency.json",
    )

    def params(self, args: Mapping[str, Any]) -> LatencyParams:
        return LatencyParams(
            service=args["service"], latency_ms=args["ms"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: LatencyParams) -> Reach:
        return whole(placement, params.service, "replaced by a slower version")
