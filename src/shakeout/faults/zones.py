"""A zone fails: its nodes go down (processes killed), freeze (processes stopped) or lose
packets; or every zone's node is drained in turn for an upgrade."""

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


class ZoneLossParams(Params):
    zone: str
    loss_percent: Annotated[int, Field(ge=1, le=100)]
    duration_s: Annotated[float, Field(gt=0.0)]


class ZonePacketLoss(Fault[ZoneLossParams]):
    """The network of a zone's node drops a share of its packets, in the data path."""

    word = "zone-packet-loss"
    phrase = 'zone "{zone}" loses {percent:d}% of its packets for {seconds:d} seconds'
    experiments = on(
        local="scenarios/zone_packet_loss.json",
        kubernetes="scenarios/kubernetes/zone_packet_loss.json",
    )

    def params(self, args: Mapping[str, Any]) -> ZoneLossParams:
        return ZoneLossParams(
            zone=args["zone"], loss_percent=args["percent"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: ZoneLossParams) -> Reach:
        hit = placement.zone(params.zone)
        return Reach(
            hit,
            f"{len(hit)} of {len(placement.every())} replicas, every service's share in zone "
            f"{params.zone}: {params.loss_percent}% of their packets dropped, both ways",
        )


class DrainParams(Params):
    timeout_s: Annotated[float, Field(gt=0.0, le=3600.0)]


class NodeDrain(Fault[DrainParams]):
    """A rolling node upgrade: every node is drained in turn (cordoned, its replicas evicted
    within their disruption budgets), then uncordoned."""

    word = "node-drain"
    phrase = "every node is drained in turn, waiting at most {seconds:d} seconds per node"
    experiments = on(
        local="scenarios/node_drain.json",
        kubernetes="scenarios/kubernetes/node_drain.json",
    )

    def params(self, args: Mapping[str, Any]) -> DrainParams:
        return DrainParams(timeout_s=float(args["seconds"]))

    def reach(self, placement: Placement, params: DrainParams) -> Reach:
        every = [replica for replica, _ in placement.every()]
        return Reach(
            every,
            f"all {len(every)} replicas, evicted node by node as the disruption budgets allow "
            "(each replaced in another zone)",
        )
