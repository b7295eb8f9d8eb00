"""Internal services in-process: identity, health, shared-key auth, fault knobs, behaviour."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from shakeout.contracts import ServiceSettings
from shakeout.services import inventory
from shakeout.services._keys import KeyStore
from shakeout.services._middleware import ShakeoutMiddleware

if TYPE_CHECKING:
    from conftest import MakeApp, WriteKey

pytestmark = pytest.mark.anyio

KEY = "key-one"
AUTH = {"X-Shakeout-Key": KEY}
INTERNAL = ("catalog", "orders", "payments", "inventory")
ITEMS = {"items": [{"product_id": "p1", "quantity": 2}]}


def client_for(app: Any) -> httpx.AsyncClient:
    """An in-process client without lifespan (enough for the stateless services)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


def assert_identity(response: httpx.Response, service: str, replica: str) -> None:
    assert response.headers["X-Shakeout-Service"] == service
    assert response.headers["X-Shakeout-Version"] == "v7"
    assert response.headers["X-Shakeout-Zone"] == "c"
    assert response.headers["X-Shakeout-Replica"] == replica


@pytest.mark.parametrize("service", INTERNAL)
async def test_identity_headers_on_every_kind_of_response(
    make_app: MakeApp, serve: Any, service: str
) -> None:
    env = {"SHAKEOUT_VERSION": "v7", "SHAKEOUT_ZONE": "c", "SHAKEOUT_REPLICA": f"{service}-2"}
    async with serve(make_app(service, env)) as client:
        responses = [
            await client.get("/healthz"),
            await client.get("/readyz"),
            await client.get("/no/such/path", headers=AUTH),
            await client.get("/products", headers={"X-Shakeout-Key": "wrong"}),
        ]
    assert [r.status_code for r in responses] == [200, 200, 404, 401]
    assert responses[0].json() == {"status": "ok"}
    assert responses[2].json() == {"error": "not found"}
    for response in responses:
        assert_identity(response, service, f"{service}-2")


async def test_identity_headers_on_injected_errors(make_app: MakeApp) -> None:
    env = {"SHAKEOUT_VERSION": "v7", "SHAKEOUT_ZONE": "c", "SHAKEOUT_ERROR_RATE": "1"}
    async with client_for(make_app("catalog", env)) as client:
        response = await client.get("/products", headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {"error": "injected"}
    assert_identity(response, "catalog", "catalog-0")


@pytest.mark.parametrize("service", INTERNAL)
async def test_ready_and_healthy(make_app: MakeApp, serve: Any, service: str) -> None:
    async with serve(make_app(service)) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_not_ready_knob_keeps_readyz_503_but_process_alive(make_app: MakeApp) -> None:
    async with client_for(make_app("catalog", {"SHAKEOUT_NOT_READY": "1"})) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert ready.status_code == 503
    assert "SHAKEOUT_NOT_READY" in ready.json()["reason"]
    assert health.status_code == 200


async def test_a_warming_replica_answers_503_and_says_so_until_it_is_warm(
    make_app: MakeApp, eventually: Any
) -> None:
    """SHAKEOUT_WARMUP_S: the first seconds of a replica (connection pools, caches) answer 503
    and fail readiness; a platform that routes only to ready replicas never sees them."""
    async with client_for(make_app("orders", {"SHAKEOUT_WARMUP_S": "600"})) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        lookup = await client.post("/orders/lookup", json={"ids": []}, headers=AUTH)
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("warming up (")
    assert health.status_code == 200
    assert (lookup.status_code, lookup.json()) == (503, {"error": "warming up"})

    async with client_for(make_app("catalog", {"SHAKEOUT_WARMUP_S": "0.05"})) as client:

        async def warm() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(warm, "catalog to end its warm-up")
        assert (await client.get("/products", headers=AUTH)).status_code == 200


def test_warmup_is_read_back_from_the_environment_the_platform_writes() -> None:
    env = {"SHAKEOUT_SECRET_FILE": "/k", "SHAKEOUT_WARMUP_S": "1.5"}
    settings = ServiceSettings.from_env("orders", env)
    assert settings.warmup_s == 1.5
    assert ServiceSettings.from_env("orders", settings.to_env()) == settings
    with pytest.raises(ValueError, match="SHAKEOUT_WARMUP_S='soon': expected a number"):
        ServiceSettings.from_env("orders", {**env, "SHAKEOUT_WARMUP_S": "soon"})


async def test_missing_key_file_means_not_ready_until_it_appears(
    make_app: MakeApp, secret_file: Path, write_key: WriteKey, eventually: Any
) -> None:
    secret_file.unlink()
    async with client_for(make_app("payments")) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert str(secret_file) in ready.json()["reason"]
        charge = await client.post(
            "/charges", json={"amount_cents": 1}, headers={**AUTH, "Idempotency-Key": "a"}
        )
        assert charge.status_code == 503
        assert charge.json() == {"error": "shared key not loaded"}
        assert (await client.get("/healthz")).status_code == 200

        write_key(KEY)

        async def is_ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(is_ready, "readiness after the key file appears")


async def test_internal_endpoints_require_the_key(make_app: MakeApp) -> None:
    async with client_for(make_app("catalog")) as client:
        missing = await client.get("/products")
        wrong = await client.get("/products", headers={"X-Shakeout-Key": "nope"})
        right = await client.get("/products", headers=AUTH)
    assert (missing.status_code, missing.json()) == (401, {"error": "unauthorized"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "unauthorized"})
    assert right.status_code == 200


async def test_previous_key_accepted_during_overlap_only(
    make_app: MakeApp, write_key: WriteKey
) -> None:
    write_key("key-two", previous=KEY, overlap_s=30.0)
    async with client_for(make_app("catalog")) as client:
        assert (await client.get("/products", headers=AUTH)).status_code == 200
        two = {"X-Shakeout-Key": "key-two"}
        assert (await client.get("/products", headers=two)).status_code == 200
    write_key("key-two", previous=KEY, rotated_at=time.time() - 31.0, overlap_s=30.0)
    async with client_for(make_app("catalog")) as client:
        assert (await client.get("/products", headers=AUTH)).status_code == 401
        assert (await client.get("/products", headers=two)).status_code == 200


async def test_key_file_change_is_picked_up_while_running(
    make_app: MakeApp, write_key: WriteKey, eventually: Any
) -> None:
    async with client_for(make_app("catalog")) as client:
        assert (await client.get("/products", headers=AUTH)).status_code == 200
        write_key("key-two", previous=None, overlap_s=0.0)
        new = {"X-Shakeout-Key": "key-two"}

        async def new_key_accepted() -> bool:
            return (await client.get("/products", headers=new)).status_code == 200

        await eventually(new_key_accepted, "the rotated key to be accepted")
        assert (await client.get("/products", headers=AUTH)).status_code == 401


async def test_error_rate_injects_that_fraction_of_500s_but_never_on_health(
    make_app: MakeApp,
) -> None:
    random.seed(1234)
    async with client_for(make_app("catalog", {"SHAKEOUT_ERROR_RATE": "0.3"})) as client:
        statuses = [(await client.get("/products", headers=AUTH)).status_code for _ in range(300)]
        health = [(await client.get("/healthz")).status_code for _ in range(50)]
        ready = [(await client.get("/readyz")).status_code for _ in range(50)]
    assert set(statuses) == {200, 500}
    assert 60 <= statuses.count(500) <= 120
    assert set(health) == set(ready) == {200}


async def test_extra_latency_delays_requests_but_not_health(make_app: MakeApp) -> None:
    async with client_for(make_app("catalog", {"SHAKEOUT_EXTRA_LATENCY_MS": "200"})) as client:
        start = time.perf_counter()
        assert (await client.get("/products", headers=AUTH)).status_code == 200
        slow = time.perf_counter() - start
        start = time.perf_counter()
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        fast = time.perf_counter() - start
    assert slow >= 0.2
    assert fast < 0.15


def test_crash_on_start_raises_system_exit_in_the_factory(make_app: MakeApp) -> None:
    for service in (*INTERNAL, "gateway"):
        with pytest.raises(SystemExit) as excinfo:
            make_app(service, {"SHAKEOUT_CRASH_ON_START": "1"})
        assert excinfo.value.code == 1


async def test_catalog_lists_and_finds_products(make_app: MakeApp) -> None:
    async with client_for(make_app("catalog")) as client:
        listing = await client.get("/products", headers=AUTH)
        one = await client.get("/products/p3", headers=AUTH)
        unknown = await client.get("/products/p999", headers=AUTH)
    products = listing.json()["products"]
    assert len(products) == 20
    assert [p["id"] for p in products] == [f"p{i}" for i in range(1, 21)]
    assert all(
        set(p) == {"id", "name", "price_cents"} and isinstance(p["price_cents"], int)
        for p in products
    )
    assert one.json() == products[2]
    assert (unknown.status_code, unknown.json()) == (404, {"error": "not found"})


async def test_payments_charges_are_idempotent(make_app: MakeApp) -> None:
    async with client_for(make_app("payments")) as client:
        first = await client.post(
            "/charges", json={"amount_cents": 500}, headers={**AUTH, "Idempotency-Key": "k1"}
        )
        again = await client.post(
            "/charges", json={"amount_cents": 500}, headers={**AUTH, "Idempotency-Key": "k1"}
        )
        other = await client.post(
            "/charges", json={"amount_cents": 500}, headers={**AUTH, "Idempotency-Key": "k2"}
        )
        no_key = await client.post("/charges", json={"amount_cents": 500}, headers=AUTH)
        bad = await client.post(
            "/charges", json={"amount_cents": "5"}, headers={**AUTH, "Idempotency-Key": "k3"}
        )
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["charge_id"] == again.json()["charge_id"] != other.json()["charge_id"]
    assert no_key.status_code == 400
    assert no_key.json() == {"error": "Idempotency-Key header is required"}
    assert bad.status_code == 400
    assert "amount_cents" in bad.json()["error"]


async def test_inventory_reservations_are_idempotent_and_validated(make_app: MakeApp) -> None:
    async with client_for(make_app("inventory")) as client:
        headers = {**AUTH, "Idempotency-Key": "k1"}
        first = await client.post("/reservations", json=ITEMS, headers=headers)
        again = await client.post("/reservations", json=ITEMS, headers=headers)
        bad = await client.post(
            "/reservations",
            json={"items": [{"product_id": "p1", "quantity": 0}]},
            headers={**AUTH, "Idempotency-Key": "k2"},
        )
        not_json = await client.post(
            "/reservations", content=b"{", headers={**AUTH, "Idempotency-Key": "k3"}
        )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["reservation_id"] == again.json()["reservation_id"]
    assert bad.status_code == 400
    assert "items[0].quantity" in bad.json()["error"]
    assert not_json.status_code == 400


def order_body(**overrides: Any) -> dict[str, Any]:
    return {
        "items": ITEMS["items"],
        "total_cents": 1798,
        "charge_id": "ch_1",
        "reservation_id": "res_1",
        **overrides,
    }


def db_rows(db_path: Path, key: str | None = None) -> int:
    with sqlite3.connect(db_path) as conn:
        if key is None:
            (count,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
        else:
            query = "SELECT COUNT(*) FROM orders WHERE idempotency_key = ?"
            (count,) = conn.execute(query, (key,)).fetchone()
    conn.close()
    return int(count)


async def test_orders_create_get_replay_and_lookup(
    make_app: MakeApp, serve: Any, data_dir: Path
) -> None:
    async with serve(make_app("orders")) as client:
        headers = {**AUTH, "Idempotency-Key": "order-1"}
        created = await client.post("/orders", json=order_body(), headers=headers)
        replay = await client.post("/orders", json=order_body(), headers=headers)
        order_id = created.json()["order_id"]
        fetched = await client.get(f"/orders/{order_id}", headers=AUTH)
        unknown = await client.get("/orders/nope", headers=AUTH)
        lookup = await client.post(
            "/orders/lookup", json={"ids": ["x", order_id, "y"]}, headers=AUTH
        )
        no_key = await client.post("/orders", json=order_body(), headers=AUTH)
        bad = await client.post(
            "/orders", json=order_body(charge_id=7), headers={**AUTH, "Idempotency-Key": "o2"}
        )
        too_many = await client.post("/orders/lookup", json={"ids": ["a"] * 10_001}, headers=AUTH)
    assert created.status_code == 201
    assert len(order_id) == 32
    assert int(order_id, 16) >= 0
    assert created.json()["status"] == "confirmed"
    assert created.json()["items"] == ITEMS["items"]
    assert (replay.status_code, replay.json()) == (200, created.json())
    assert (fetched.status_code, fetched.json()) == (200, created.json())
    assert unknown.status_code == 404
    assert lookup.json() == {"found": [order_id], "missing": ["x", "y"], "duplicates": {}}
    assert no_key.status_code == 400
    assert bad.status_code == 400
    assert "charge_id" in bad.json()["error"]
    assert too_many.status_code == 400
    assert db_rows(data_dir / "orders.sqlite3") == 1
    with sqlite3.connect(data_dir / "orders.sqlite3") as conn:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert mode == "wal"


async def test_orders_concurrent_same_key_creates_one_order(
    make_app: MakeApp, serve: Any, data_dir: Path
) -> None:
    async with serve(make_app("orders")) as client:
        headers = {**AUTH, "Idempotency-Key": "same"}
        responses = await asyncio.gather(
            *(client.post("/orders", json=order_body(), headers=headers) for _ in range(20))
        )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert db_rows(data_dir / "orders.sqlite3", "same") == 1


async def test_orders_lookup_handles_ten_thousand_ids(make_app: MakeApp, serve: Any) -> None:
    async with serve(make_app("orders")) as client:
        created = await client.post(
            "/orders", json=order_body(), headers={**AUTH, "Idempotency-Key": "big"}
        )
        order_id = created.json()["order_id"]
        ids = [f"missing-{i}" for i in range(9_999)] + [order_id]
        lookup = await client.post("/orders/lookup", json={"ids": ids}, headers=AUTH)
    assert lookup.status_code == 200
    assert lookup.json()["found"] == [order_id]
    assert len(lookup.json()["missing"]) == 9_999


async def test_orders_not_ready_when_the_database_cannot_open(
    make_app: MakeApp, serve: Any, data_dir: Path
) -> None:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("a file where the data directory should be")
    async with serve(make_app("orders")) as client:
        ready = await client.get("/readyz")
        create = await client.post(
            "/orders", json=order_body(), headers={**AUTH, "Idempotency-Key": "k"}
        )
    assert ready.status_code == 503
    assert "cannot open" in ready.json()["reason"]
    assert (create.status_code, create.json()) == (503, {"error": "database not ready"})


def test_orders_require_a_data_dir(make_app: MakeApp) -> None:
    with pytest.raises(ValueError, match="SHAKEOUT_DATA_DIR"):
        make_app("orders", {"SHAKEOUT_DATA_DIR": ""})


async def test_inventory_refuses_more_than_its_stock(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory, "INITIAL_STOCK", 3)
    async with client_for(make_app("inventory")) as client:
        first = await client.post(
            "/reservations", json=ITEMS, headers={**AUTH, "Idempotency-Key": "s1"}
        )
        second = await client.post(
            "/reservations", json=ITEMS, headers={**AUTH, "Idempotency-Key": "s2"}
        )
    assert first.status_code == 201
    assert (second.status_code, second.json()) == (409, {"error": "insufficient stock of p1"})


async def test_unhandled_errors_still_carry_identity_headers(secret_file: Path) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    settings = ServiceSettings.from_env(
        "catalog", {"SHAKEOUT_SECRET_FILE": str(secret_file), "SHAKEOUT_VERSION": "v7"}
    )
    app = ShakeoutMiddleware(broken, settings=settings, keys=KeyStore(secret_file), internal=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get("/products")
    assert (response.status_code, response.json()) == (500, {"error": "internal error"})
    assert response.headers["X-Shakeout-Version"] == "v7"
