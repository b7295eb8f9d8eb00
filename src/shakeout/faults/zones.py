"""A zone fails: its nodes go down (processes killed) or freeze (processes stopped)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from shakeout.faults._base import Fault, Params, Reach, on
from shakeout.placement import Placement


class ZoneParams(Params):
    zone: str
    duration_s: Annotated[float, Field(gt=0.0)]


class _ZoneFault(Fault[ZoneParams]):
    def params(self, args: Mapping[str, Any]) -> ZoneParams:
        return ZoneParams(zone=args["zone"], duration_s=float(args["seconds"]))

    def reach(self, placement: Placement, params: ZoneParams) -> Reach:
        hit = placement.zone(params.zone)
        total = len(placement.every())
        return Reach(
            hit, f"{len(hit)} of {total} replicas, every service's share in zone {params.zone}"
        )


class ZoneOutage(_ZoneFault):
    """Every node of a zone goes down; its replicas are killed and come back with it."""

    word = "zone-outage"
    phrase = 'zone "{zone}" goes down for {seconds:d} seconds'
    experiments = on(
        local="scenarios/zone_outage.json",
        kubernetes="scenarios/kubernetes/zone_outage.json",
    )


class ZoneFreeze(_ZoneFault):
    """Every node of a zone freezes: its processes stop answering but stay."""

    word = "zone-freeze"
    phrase = 'zone "{zone}" freezes for {seconds:d} seconds'
    experiments = on(
        local="scenarios/zone_freeze.json",
        kubernetes="scenarios/kubernetes/zone_freeze.json",
    )
