"""Network and resource faults (Chaos Mesh on a cluster; the embedded platform has none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from shakeout.faults._base import Fault, Params, Reach, on, whole
from shakeout.placement import Placement

Seconds = Annotated[float, Field(gt=0.0)]
Percent = Annotated[int, Field(ge=1, le=100)]


class NetworkLatencyParams(Params):
    service: str
    latency_ms: Annotated[int, Field(ge=1, le=600_000)]
    duration_s: Seconds


class NetworkLatency(Fault[NetworkLatencyParams]):
    """A service's pods get network latency."""

    word = "network-latency"
    phrase = '"{service}" gets {ms:d} ms of network latency for {seconds:d} seconds'
    experiments = on(kubernetes="scenarios/kubernetes/network_latency.json")

    def params(self, args: Mapping[str, Any]) -> NetworkLatencyParams:
        return NetworkLatencyParams(
            service=args["service"], latency_ms=args["ms"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: NetworkLatencyParams) -> Reach:
        return whole(placement, params.service, "its pods' network delayed")


class PacketLossParams(Params):
    service: str
    loss_percent: Percent
    duration_s: Seconds


class PacketLoss(Fault[PacketLossParams]):
    """A service's pods lose a share of their packets."""

    word = "packet-loss"
    phrase = '"{service}" loses {percent:d}% of its packets for {seconds:d} seconds'
    experiments = on(kubernetes="scenarios/kubernetes/packet_loss.json")

    def params(self, args: Mapping[str, Any]) -> PacketLossParams:
        return PacketLossParams(
            service=args["service"], loss_percent=args["percent"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: PacketLossParams) -> Reach:
        return whole(placement, params.service, "its pods' packets dropped")


class CpuStressParams(Params):
    service: str
    load_percent: Percent
    duration_s: Seconds


class CpuStress(Fault[CpuStressParams]):
    """CPU stress beside each of a service's pods."""

    word = "cpu-stress"
    phrase = '"{service}" is under {percent:d}% CPU stress for {seconds:d} seconds'
    experiments = on(kubernetes="scenarios/kubernetes/cpu_stress.json")

    def params(self, args: Mapping[str, Any]) -> CpuStressParams:
        return CpuStressParams(
            service=args["service"], load_percent=args["percent"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: CpuStressParams) -> Reach:
        return whole(placement, params.service, "CPU stress beside each pod's process")


class MemoryStressParams(Params):
    service: str
    size_mb: Annotated[int, Field(ge=1, le=1_000_000)]
    duration_s: Seconds


class MemoryStress(Fault[MemoryStressParams]):
    """Memory pressure in each of a service's pods."""

    word = "memory-stress"
    phrase = '"{service}" is under {mb:d} MB of memory pressure for {seconds:d} seconds'
    experiments = on(kubernetes="scenarios/kubernetes/memory_stress.json")

    def params(self, args: Mapping[str, Any]) -> MemoryStressParams:
        return MemoryStressParams(
            service=args["service"], size_mb=args["mb"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: MemoryStressParams) -> Reach:
        return whole(placement, params.service, "memory pressure in each pod")
