"""The gateway in-process, its upstream calls routed to the other in-process apps."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from shakeout.services import _upstream, inventory

if TYPE_CHECKING:
    from conftest import MakeApp, Shop

pytestmark = pytest.mark.anyio

CART = {"items": [{"product_id": "p1", "quantity": 2}, {"product_id": "p4", "quantity": 1}]}


def order_count(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
    finally:
        conn.close()
    return int(count)


async def prices(shop: Shop) -> dict[str, int]:
    listing = await shop.client.get("/api/products")
    return {p["id"]: p["price_cents"] for p in listing.json()["products"]}


async def test_products_and_identity(shop: Shop) -> None:
    listing = await shop.client.get("/api/products")
    one = await shop.client.get("/api/products/p2")
    unknown = await shop.client.get("/api/products/p999")
    assert listing.status_code == 200
    assert len(listing.json()["products"]) == 20
    assert listing.headers["X-Shakeout-Service"] == "gateway"
    assert listing.headers["X-Shakeout-Replica"] == "gateway-0"
    assert one.json() == listing.json()["products"][1]
    assert (unknown.status_code, unknown.json()) == (404, {"error": "not found"})
    assert unknown.headers["X-Shakeout-Service"] == "gateway"


async def test_gateway_health_needs_no_upstream(shop: Shop) -> None:
    shop.upstream.failures["catalog"] = aiohttp.ClientConnectionError("refused")
    assert (await shop.client.get("/healthz")).status_code == 200
    assert (await shop.client.get("/readyz")).status_code == 200
    assert shop.upstream.calls == []


async def test_cart_is_priced_from_the_catalog(shop: Shop) -> None:
    price = await prices(shop)
    response = await shop.client.post("/api/cart", json=CART)
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"product_id": "p1", "quantity": 2, "price_cents": price["p1"]},
            {"product_id": "p4", "quantity": 1, "price_cents": price["p4"]},
        ],
        "total_cents": 2 * price["p1"] + price["p4"],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [{"product_id": "p404", "quantity": 1}]}, "items[0].product_id"),
        ({"items": [{"product_id": "p1", "quantity": 1}, {"product_id": "p1"}]}, "items[1]"),
        ({"items": []}, "items"),
        ({"basket": []}, "items"),
        ([1, 2], "body"),
    ],
)
async def test_cart_rejects_bad_bodies_naming_the_field(shop: Shop, body: Any, field: str) -> None:
    response = await shop.client.post("/api/cart", json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]


async def test_checkout_happy_path(shop: Shop) -> None:
    price = await prices(shop)
    response = await shop.client.post(
        "/api/checkout", json=CART, headers={"Idempotency-Key": "c-1"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["total_cents"] == 2 * price["p1"] + price["p4"]
    assert response.headers["X-Order-Id"] == body["order_id"]
    order = await shop.client.get(f"/api/orders/{body['order_id']}")
    assert order.status_code == 200
    assert order.json()["items"] == CART["items"]
    assert order.json()["total_cents"] == body["total_cents"]
    assert order_count(shop.db_path) == 1
    called = [(host, path) for host, method, path in shop.upstream.calls if method == "POST"]
    assert called == [
        ("inventory", "/reservations"),
        ("payments", "/charges"),
        ("orders", "/orders"),
    ]


async def test_checkout_retry_returns_the_same_order(shop: Shop) -> None:
    headers = {"Idempotency-Key": "c-2"}
    first = await shop.client.post("/api/checkout", json=CART, headers=headers)
    again = await shop.client.post("/api/checkout", json=CART, headers=headers)
    racing = await asyncio.gather(
        *(shop.client.post("/api/checkout", json=CART, headers=headers) for _ in range(5))
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert {r.status_code for r in racing} == {200}
    ids = {r.json()["order_id"] for r in [first, again, *racing]}
    assert ids == {first.json()["order_id"]}
    assert again.headers["X-Order-Id"] == first.json()["order_id"]
    assert order_count(shop.db_path) == 1


async def test_checkout_requires_an_idempotency_key(shop: Shop) -> None:
    response = await shop.client.post("/api/checkout", json=CART)
    assert response.status_code == 400
    assert response.json() == {"error": "Idempotency-Key header is required"}
    assert shop.upstream.calls == []


async def test_checkout_unknown_product_is_400_and_charges_nothing(shop: Shop) -> None:
    response = await shop.client.post(
        "/api/checkout",
        json={"items": [{"product_id": "nope", "quantity": 1}]},
        headers={"Idempotency-Key": "c-3"},
    )
    assert response.status_code == 400
    assert "items[0].product_id" in response.json()["error"]
    assert [host for host, _, _ in shop.upstream.calls] == ["catalog"]


async def test_lookup_reports_found_and_missing(shop: Shop) -> None:
    ids = []
    for n in range(3):
        created = await shop.client.post(
            "/api/checkout", json=CART, headers={"Idempotency-Key": f"l-{n}"}
        )
        ids.append(created.json()["order_id"])
    response = await shop.client.post(
        "/api/orders/lookup", json={"ids": [ids[0], "ghost", ids[2], ids[1]]}
    )
    assert response.status_code == 200
    assert response.json() == {
        "found": [ids[0], ids[2], ids[1]],
        "missing": ["ghost"],
        "duplicates": {},
    }
    missing = await shop.client.get("/api/orders/ghost")
    assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
    bad = await shop.client.post("/api/orders/lookup", json={"ids": "all"})
    assert bad.status_code == 400


@pytest.mark.parametrize("shop_env", [{"payments": {"SHAKEOUT_ERROR_RATE": "1"}}])
async def test_failing_dependency_gives_502_naming_it(shop: Shop) -> None:
    response = await shop.client.post(
        "/api/checkout", json=CART, headers={"Idempotency-Key": "f-1"}
    )
    assert response.status_code == 502
    assert response.json()["dependency"] == "payments"
    assert "payments" in response.json()["error"]
    assert response.headers["X-Shakeout-Service"] == "gateway"
    assert order_count(shop.db_path) == 0


async def test_unreachable_dependency_gives_503_naming_it(shop: Shop) -> None:
    shop.upstream.failures["orders"] = aiohttp.ClientConnectionError("connection refused")
    response = await shop.client.post(
        "/api/checkout", json=CART, headers={"Idempotency-Key": "f-2"}
    )
    assert response.status_code == 503
    assert response.json()["dependency"] == "orders"


async def test_hung_dependency_gives_504_without_hanging(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_upstream, "TOTAL_TIMEOUT_S", 0.2)
    shop.upstream.hang.add("catalog")
    response = await shop.client.get("/api/products")
    assert response.status_code == 504
    assert response.json() == {"error": "catalog timed out", "dependency": "catalog"}
    shop.upstream.hang.clear()
    shop.upstream.failures["inventory"] = aiohttp.SocketTimeoutError("slow")
    response = await shop.client.post(
        "/api/checkout", json=CART, headers={"Idempotency-Key": "f-3"}
    )
    assert response.status_code == 504
    assert response.json()["dependency"] == "inventory"


async def test_out_of_stock_is_409_naming_inventory(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory, "INITIAL_STOCK", 1)
    response = await shop.client.post(
        "/api/checkout", json=CART, headers={"Idempotency-Key": "s-1"}
    )
    assert response.status_code == 409
    assert response.json() == {"error": "insufficient stock of p1", "dependency": "inventory"}
    assert order_count(shop.db_path) == 0


@pytest.mark.parametrize("shop_env", [{"gateway": {"SHAKEOUT_NOT_READY": "1"}}])
async def test_gateway_not_ready_knob(shop: Shop) -> None:
    assert (await shop.client.get("/readyz")).status_code == 503
    assert (await shop.client.get("/healthz")).status_code == 200


async def test_gateway_keeps_working_across_a_key_rotation(
    shop: Shop, write_key: Any, eventually: Any
) -> None:
    assert (await shop.client.get("/api/products")).status_code == 200
    write_key("key-two", previous="key-one", overlap_s=30.0)

    async def rotated() -> bool:  # the key file is only looked at when requests arrive
        assert (await shop.client.get("/api/products")).status_code == 200
        return shop.apps["gateway"].state.keys.current == "key-two"

    await eventually(rotated, "the gateway to load the rotated key")
    assert (await shop.client.get("/api/products")).status_code == 200


async def test_gateway_with_a_wrong_key_gets_502(
    shop: Shop, make_app: MakeApp, serve: Any, write_key: Any, tmp_path: Path
) -> None:
    other = tmp_path / "other-key.json"
    other.write_text('{"current": "stranger", "previous": null, "rotated_at": 0, "overlap_s": 0}')
    urls = {
        f"{name.upper()}_URL": f"http://{name}"
        for name in ("catalog", "orders", "payments", "inventory")
    }
    stranger = make_app(
        "gateway", {**urls, "SHAKEOUT_SECRET_FILE": str(other)}, upstream=shop.upstream
    )
    async with serve(stranger) as client:
        response = await client.get("/api/products")
    assert response.status_code == 502
    assert response.json() == {"error": "catalog answered 401", "dependency": "catalog"}


def test_gateway_requires_upstream_urls(make_app: MakeApp) -> None:
    with pytest.raises(ValueError, match="CATALOG_URL"):
        make_app("gateway", {"ORDERS_URL": "http://o"})
