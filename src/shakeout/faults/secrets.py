"""The shared key: rotated, or its store unreachable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from shakeout.faults._base import Fault, Params, Reach, on
from shakeout.placement import Placement


def _everyone(placement: Placement, what: str) -> Reach:
    replicas = [r for r, _ in placement.every()]
    return Reach(replicas, f"every service ({what}); no replica is stopped")


class KeyRotation(Fault[Params]):
    """The internal credential every service shares is rotated."""

    word = "key-rotation"
    phrase = "the shared key is rotated"
    experiments = on(
        local="scenarios/key_rotation.json",
        kubernetes="scenarios/kubernetes/key_rotation.json",
    )

    def params(self, args: Mapping[str, Any]) -> Params:
        return Params()

    def reach(self, placement: Placement, params: Params) -> Reach:
        return _everyone(placement, "its internal credential is rotated")


class OutageParams(Params):
    duration_s: Annotated[float, Field(gt=0.0)]


class SecretStoreOutage(Fault[OutageParams]):
    """The secret store cannot be read for a while."""

    word = "secret-store-outage"
    phrase = "the secret store is unreachable for {seconds:d} seconds"
    experiments = on(
        local="scenarios/secret_store_outage.json",
        kubernetes="scenarios/kubernetes/secret_store_outage.json",
    )

    def params(self, args: Mapping[str, Any]) -> OutageParams:
        return OutageParams(duration_s=float(args["seconds"]))

    def reach(self, placement: Placement, params: OutageParams) -> Reach:
        return _everyone(placement, "the secret store goes away")
