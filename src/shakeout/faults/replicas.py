"""Replicas go away: killed, their nodes taken, or the service scaled down."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from shakeout.faults._base import Fault, Params, Reach, on
from shakeout.placement import Placement

Count = Annotated[int, Field(ge=1, le=500)]
Seconds = Annotated[float, Field(gt=0.0)]


class KillParams(Params):
    service: str
    count: Count


class ReplicaKill(Fault[KillParams]):
    """Some replicas of a service are killed (and restarted by the platform)."""

    word = "replica-kill"
    phrase = '{count:d} replicas of "{service}" are killed'
    experiments = on(
        local="scenarios/kill_replicas.json",
        kubernetes="scenarios/kubernetes/kill_replicas.json",
    )

    def params(self, args: Mapping[str, Any]) -> KillParams:
        return KillParams(service=args["service"], count=args["count"])

    def reach(self, placement: Placement, params: KillParams) -> Reach:
        replicas = placement.service(params.service)
        count = min(params.count, len(replicas))
        return Reach(
            [r for r, _ in replicas[:count]],
            f"{count} of {len(replicas)} replicas of {params.service} (killed, then restarted)",
        )


class LossParams(Params):
    service: str
    count: Count
    duration_s: Seconds


class CapacityLoss(Fault[LossParams]):
    """Some replicas lose their node for a while."""

    word = "capacity-loss"
    phrase = '{count:d} replicas of "{service}" lose their node for {seconds:d} seconds'
    experiments = on(
        local="scenarios/capacity_loss.json",
        kubernetes="scenarios/kubernetes/capacity_loss.json",
    )

    def params(self, args: Mapping[str, Any]) -> LossParams:
        return LossParams(
            service=args["service"], count=args["count"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: LossParams) -> Reach:
        replicas = placement.service(params.service)
        count = min(params.count, len(replicas))
        return Reach(
            [r for r, _ in replicas[len(replicas) - count :]],
            f"{count} of {len(replicas)} replicas of {params.service} (evicted with their nodes "
            "taken; the embedded platform reschedules none until the fault ends, a cluster may "
            "place them on other nodes)",
        )


class ScaleParams(Params):
    service: str
    replicas: Annotated[int, Field(ge=0, le=500)]
    duration_s: Seconds


class Scale(Fault[ScaleParams]):
    """A service is scaled to a number of replicas for a while."""

    word = "scale"
    phrase = '"{service}" is scaled to {replicas:d} replicas for {seconds:d} seconds'
    experiments = on(local="scenarios/scale.json", kubernetes="scenarios/kubernetes/scale.json")

    def params(self, args: Mapping[str, Any]) -> ScaleParams:
        return ScaleParams(
            service=args["service"], replicas=args["replicas"], duration_s=float(args["seconds"])
        )

    def reach(self, placement: Placement, params: ScaleParams) -> Reach:
        replicas = placement.service(params.service)
        gone = replicas[params.replicas :]
        return Reach(
            [r for r, _ in gone],
            f"{params.service} from {len(replicas)} to {params.replicas} replicas "
            f"({len(gone)} stopped)",
        )
