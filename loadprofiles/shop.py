"""The reference shop's customer journeys: browse, view a product, add to cart, check out.

Runs on its own with plain Locust (``locust -f loadprofiles/shop.py --headless -u 20 -r 20
--run-time 30s --host http://127.0.0.1:PORT``). Under ShakeOut the rate and user count come from
the environment (``SHAKEOUT_RATE`` requests per second spread over ``SHAKEOUT_USERS`` users,
closed model: each user waits so as to keep its share of the rate) and every request is
recorded by ``shakeout.loadworker.capture``.

Request names are journey names, which SLO objectives refer to: ``browse``, ``product``,
``cart``, ``checkout``.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant_throughput, task

import shakeout.loadworker.capture  # noqa: F401  (records every request for ShakeOut)

RATE_RPS = float(os.environ.get("SHAKEOUT_RATE", "20"))
USERS = int(os.environ.get("SHAKEOUT_USERS", "10"))
PRODUCTS = [f"p{i}" for i in range(1, 21)]


class Shopper(FastHttpUser):
    """A customer of the shop; tasks are weighted like a real browse-to-buy funnel."""

    wait_time = constant_throughput(RATE_RPS / USERS)
    network_timeout = 10.0
    connection_timeout = 5.0

    def _items(self) -> list[dict[str, object]]:
        return [
            {"product_id": random.choice(PRODUCTS), "quantity": random.randint(1, 3)}
            for _ in range(random.randint(1, 3))
        ]

    @task(4)
    def browse(self) -> None:
        """List the catalog."""
        self.client.get("/api/products", name="browse")

    @task(3)
    def product(self) -> None:
        """View one product."""
        self.client.get(f"/api/products/{random.choice(PRODUCTS)}", name="product")

    @task(2)
    def cart(self) -> None:
        """Price a cart."""
        self.client.post("/api/cart", json={"items": self._items()}, name="cart")

    @task(2)
    def checkout(self) -> None:
        """Check out a cart with a fresh idempotency key."""
        self.client.post(
            "/api/checkout",
            json={"items": self._items()},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name="checkout",
        )
