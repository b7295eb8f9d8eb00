"""Changes to what services read: a feature flag, the orders store's schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shakeout.faults._base import Fault, Params, Reach, on
from shakeout.placement import Placement


class FlagParams(Params):
    flag: str
    value: str


class ConfigChange(Fault[FlagParams]):
    """A feature flag is set to a value (rolled out in stages where the target stages it)."""

    word = "config-change"
    phrase = 'the "{flag}" flag is set to "{value}"'
    experiments = on(
        local="scenarios/config_change.json",
        kubernetes="scenarios/kubernetes/config_change.json",
    )

    def params(self, args: Mapping[str, Any]) -> FlagParams:
        return FlagParams(flag=args["flag"], value=args["value"])

    def reach(self, placement: Placement, params: FlagParams) -> Reach:
        # A flag is named after the service that reads it ("catalog.pricing" -> catalog).
        service = params.flag.split(".", 1)[0]
        replicas = placement.service(service)
        first = placement.config_first_zones
        how = (
            f"first the replicas in zone {', '.join(first)}, then the others"
            if first
            else ("all at once")
        )
        return Reach(
            [r for r, _ in replicas],
            f"all {len(replicas)} replicas of {service} read the new flag value ({how})",
        )


class SchemaMigration(Fault[Params]):
    """The orders store's schema is migrated while orders are taken."""

    word = "schema-migration"
    phrase = "the orders store is migrated online"
    experiments = on(
        local="scenarios/schema_migration.json",
        kubernetes="scenarios/kubernetes/schema_migration.json",
    )

    def params(self, args: Mapping[str, Any]) -> Params:
        return Params()

    def reach(self, placement: Placement, params: Params) -> Reach:
        replicas = placement.service("orders")
        how = f"{placement.migration} schema migration" if placement.migration else "migration"
        return Reach(
            [r for r, _ in replicas],
            f"the orders store shared by all {len(replicas)} orders replicas ({how}); "
            "no replica is stopped",
        )
