"""The reference shop's customer journeys, shared by every shape in this folder.

Journey (and request) names are what SLO objectives refer to: ``browse``, ``product``, ``cart``,
``checkout``. The weights make a browse-to-buy funnel.

Not a profile (no shape): ``locust -f loadprofiles/_shop.py`` is refused with a line naming the
profiles that import it (``shakeout.loadworker.users``); run one of them instead.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from shakeout.loadworker.users import ShakeoutUser

PRODUCTS = [f"p{i}" for i in range(1, 21)]


def _items() -> list[dict[str, object]]:
    return [
        {"product_id": random.choice(PRODUCTS), "quantity": random.randint(1, 3)}
        for _ in range(random.randint(1, 3))
    ]


def browse(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """List the catalog."""
    user.client.get("/api/products", name="browse", context=context)


def product(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """View one product."""
    user.client.get(f"/api/products/{random.choice(PRODUCTS)}", name="product", context=context)


def cart(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """Price a cart."""
    user.client.post("/api/cart", json={"items": _items()}, name="cart", context=context)


def checkout(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """Check out a cart with a fresh idempotency key (a retry can never double-order)."""
    user.client.post(
        "/api/checkout",
        json={"items": _items()},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        name="checkout",
        context=context,
    )


class Shopper(ShakeoutUser):
    """A customer of the shop."""

    journeys = [(4, browse), (3, product), (2, cart), (2, checkout)]  # noqa: RUF012
