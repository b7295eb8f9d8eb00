"""Data checks a target owns: reconciling the orders the load saw acknowledged with the store.

The reference shop answers ``POST /api/orders/lookup`` (through its gateway) with the ids it
does not know and the orders sharing an idempotency key. A target whose service has another
store gives its own :class:`OrderStore`; a target with none gives ``None`` and the drill's order
check says so (a ConfigError, never a pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from shakeout.errors import PlatformError

LOOKUP_CHUNK = 5000


@dataclass
class Reconciliation:
    """What the store said about the acknowledged orders."""

    missing: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    """Idempotency key -> how many orders share it (more than one)."""


class OrderStore(Protocol):
    """Where acknowledged orders are looked up."""

    def reconcile(self, ids: Sequence[str]) -> Reconciliation:
        """Which of ``ids`` the store lacks, and which keys it holds more than once."""
        ...


class ShopOrders:
    """The reference shop's order store, through its gateway's lookup API."""

    def __init__(self, gateway_url: str, path: str = "/api/orders/lookup") -> None:
        self.gateway_url = gateway_url
        self.path = path

    def reconcile(self, ids: Sequence[str]) -> Reconciliation:
        """Look the ids up in chunks; PlatformError naming the URL when the store cannot."""
        found = Reconciliation()
        with httpx.Client(base_url=self.gateway_url, timeout=30.0) as client:
            for i in range(0, len(ids), LOOKUP_CHUNK):
                chunk = list(ids[i : i + LOOKUP_CHUNK])
                try:
                    response = client.post(self.path, json={"ids": chunk})
                    response.raise_for_status()
                    answer = response.json()
                    found.missing.extend(answer["missing"])
                    # The store names the orders sharing each idempotency key.
                    for key, orders in answer["duplicates"].items():
                        found.duplicates[key] = len(orders)
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    raise PlatformError(
                        f"cannot reconcile orders: {self.gateway_url}{self.path} failed: {exc!r}"
                    ) from exc
        return found
