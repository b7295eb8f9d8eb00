"""Releases that go wrong or right: a crash-looping release, bad and good canaries, a release
meeting a registry outage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from shakeout.faults._base import Fault, Params, Reach, on
from shakeout.placement import Placement

Share = Annotated[float, Field(gt=0.0, le=1.0)]


def _new_version(placement: Placement, service: str, version: str, weight: float) -> Reach:
    """The replicas a release adds beside the stable ones (as many as the service runs)."""
    count = len(placement.service(service))
    replicas = placement.version(service, version, count)
    return Reach(
        [r for r, _ in replicas],
        f"{count} new replicas of {service} taking {weight:.0%} of its traffic",
    )


class ReleaseParams(Params):
    service: str
    weight: Share


class CrashLoop(Fault[ReleaseParams]):
    """A new release crashes on start while it takes a share of traffic."""

    word = "crash-loop"
    phrase = 'a release of "{service}" that crashes on start takes {weight:d}% of traffic'
    experiments = on(
        local="scenarios/crash_loop.json",
        kubernetes="scenarios/kubernetes/crash_loop.json",
    )

    def params(self, args: Mapping[str, Any]) -> ReleaseParams:
        return ReleaseParams(service=args["service"], weight=args["weight"] / 100.0)

    def reach(self, placement: Placement, params: ReleaseParams) -> Reach:
        return _new_version(placement, params.service, "v2-crashloop", params.weight)


class GoodCanary(Fault[ReleaseParams]):
    """The next version as a canary, held until the platform promotes or rolls it back."""

    word = "good-canary"
    phrase = 'a canary of "{service}" takes {weight:d}% of traffic'
    experiments = on(
        local="scenarios/good_canary.json",
        kubernetes="scenarios/kubernetes/good_canary.json",
    )

    def params(self, args: Mapping[str, Any]) -> ReleaseParams:
        return ReleaseParams(service=args["service"], weight=args["weight"] / 100.0)

    def reach(self, placement: Placement, params: ReleaseParams) -> Reach:
        return _new_version(placement, params.service, "v2", params.weight)


class BadCanaryParams(Params):
    service: str
    error_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    weight: Share
    duration_s: Annotated[float, Field(gt=0.0)]


class BadCanary(Fault[BadCanaryParams]):
    """A canary that fails a share of its requests."""

    word = "bad-canary"
    phrase = (
        'a canary of "{service}" failing {percent:d}% of requests takes {weight:d}% of '
        "traffic for {seconds:d} seconds"
    )
    experiments = on(
        local="scenarios/bad_canary.json",
        kubernetes="scenarios/kubernetes/bad_canary.json",
    )

    def params(self, args: Mapping[str, Any]) -> BadCanaryParams:
        return BadCanaryParams(
            service=args["service"],
            error_rate=args["percent"] / 100.0,
            weight=args["weight"] / 100.0,
            duration_s=float(args["seconds"]),
        )

    def reach(self, placement: Placement, params: BadCanaryParams) -> Reach:
        return _new_version(placement, params.service, "v2-canary", params.weight)


class SlowCanaryParams(Params):
    service: str
    latency_ms: Annotated[int, Field(ge=0, le=600_000)]
    weight: Share
    duration_s: Annotated[float, Field(gt=0.0)]


class BadCanaryLatency(Fault[SlowCanaryParams]):
    """A canary that answers slower than the stable version."""

    word = "bad-canary-latency"
    phrase = (
        'a canary of "{service}" answering {ms:d} ms slower takes {weight:d}% of '
        "traffic for {seconds:d} seconds"
    )
    experiments = on(
        local="scenarios/bad_canary_latency.json",
        kubernetes="scenarios/kubernetes/bad_canary_latency.json",
    )

    def params(self, args: Mapping[str, Any]) -> SlowCanaryParams:
        return SlowCanaryParams(
            service=args["service"],
            latency_ms=args["ms"],
            weight=args["weight"] / 100.0,
            duration_s=float(args["seconds"]),
        )

    def reach(self, placement: Placement, params: SlowCanaryParams) -> Reach:
        return _new_version(placement, params.service, "v2-slow-canary", params.weight)


class RegistryParams(Params):
    service: str
    duration_s: Annotated[float, Field(gt=0.0)]


class RegistryOutage(Fault[RegistryParams]):
    """The image registry is unreachable while a release of a service rolls out."""

    word = "registry-outage"
    phrase = (
        'a release of "{service}" rolls out while the registry is unreachable for {seconds:d} '
        "seconds"
    )
    experiments = on(
        local="scenarios/registry_outage.json",
        kubernetes="scenarios/kubernetes/registry_outage.json",
    )

    def params(self, args: Mapping[str, Any]) -> RegistryParams:
        return RegistryParams(service=args["service"], duration_s=float(args["seconds"]))

    def reach(self, placement: Placement, params: RegistryParams) -> Reach:
        reach = _new_version(placement, params.service, "v2", 1.0)
        return Reach(
            reach.replicas,
            f"{reach.description}, which cannot be pulled while the registry is unreachable "
            "(the replicas serving now are not touched by the fault)",
        )
