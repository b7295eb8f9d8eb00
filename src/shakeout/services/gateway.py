"""Gateway: the public ``/api`` edge; calls catalog, inventory, payments and orders.

Upstream calls go through ``Upstreams`` (in ``_upstream``): in production one shared
``aiohttp.ClientSession`` opened and closed by the app's lifespan; tests pass their own
``Upstream``.

Payments is the external provider, the dependency expected to degrade. Toward it the gateway
applies the policy the platform passes in its environment (``platform.dependencies.payments``
of the target file, see ``shakeout.contracts.PaymentsPolicy``): a per-call timeout, retries
with exponential backoff (safe: every charge carries the checkout's idempotency key), a circuit
breaker, and graceful degradation: when payments fails, times out or the breaker is open,
checkout still accepts the order with its payment deferred (status ``payment_pending``), stored
once under its idempotency key. Every checkout answer carries
``X-Shakeout-Breaker: payments=<state>`` when a breaker is configured; the platform router turns
its changes into events.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shakeout.contracts import PaymentsPolicy

from ._keys import key_store
from ._middleware import build_app, json_error
from ._requests import ApiError, parse_ids, parse_items, read_json, require_idempotency_key
from ._settings import load_settings
from ._upstream import JSON_MEDIA_TYPE, AiohttpUpstream, Upstream, Upstreams, answer_field

BREAKER_HEADER = "X-Shakeout-Breaker"
PENDING_CHARGE = "pending"
"""The charge id stored with an order whose payment is deferred."""


def create_app(upstream: Upstream | None = None) -> Starlette:
    """Build the gateway from the environment; ``upstream`` replaces the network (tests)."""
    settings = load_settings("gateway")
    keys = key_store(settings)
    up = Upstreams(settings, keys, PaymentsPolicy.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if upstream is None:
                up.client = await stack.enter_async_context(AiohttpUpstream(len(up.urls)))
            else:
                up.client = upstream
            try:
                yield
            finally:
                up.client = None

    async def list_products(request: Request) -> Response:
        response = await up.call("catalog", "GET", "/products")
        return Response(response.body, media_type=JSON_MEDIA_TYPE)

    async def get_product(request: Request) -> Response:
        path = "/products/" + quote(request.path_params["product_id"], safe="")
        response = await up.call("catalog", "GET", path, accept=(200, 404))
        if response.status == 404:
            return json_error(404, "not found")
        return Response(response.body, media_type=JSON_MEDIA_TYPE)

    async def cart(request: Request) -> Response:
        lines, total = await up.price(parse_items(await read_json(request)))
        return JSONResponse({"items": lines, "total_cents": total})

    async def checkout(request: Request) -> Response:
        key = require_idempotency_key(request)
        items = parse_items(await read_json(request))
        _, total = await up.price(items)
        wanted = [{"product_id": i.product_id, "quantity": i.quantity} for i in items]
        _, reservation = await up.call_json(
            "inventory",
            "POST",
            "/reservations",
            json={"items": wanted},
            idempotency_key=key,
            accept=(200, 201, 409),
        )
        if "reservation_id" not in reservation:
            message = str(reservation.get("error", "inventory refused the reservation"))
            raise ApiError(message, 409, dependency="inventory")
        charge_id = await up.charge(total, key)
        new_order: dict[str, Any] = {
            "items": wanted,
            "total_cents": total,
            "charge_id": charge_id or PENDING_CHARGE,
            "reservation_id": answer_field(reservation, "reservation_id", "inventory"),
        }
        if charge_id is None:
            new_order["status"] = "payment_pending"
        status, order = await up.call_json(
            "orders", "POST", "/orders", json=new_order, idempotency_key=key, accept=(200, 201)
        )
        order_id = str(answer_field(order, "order_id", "orders"))
        headers = {"X-Order-Id": order_id}
        if up.breaker is not None:
            headers[BREAKER_HEADER] = f"payments={up.breaker.state}"
        # A deferred payment is reported as such even by an orders service that stores every
        # order as confirmed (it ignores the status field).
        reported = "payment_pending" if charge_id is None else order.get("status", "confirmed")
        return JSONResponse(
            {"order_id": order_id, "total_cents": order.get("total_cents", total),
             "status": reported},
            status_code=status,
            headers=headers,
        )  # fmt: skip

    async def get_order(request: Request) -> Response:
        path = "/orders/" + quote(request.path_params["order_id"], safe="")
        response = await up.call("orders", "GET", path, accept=(200, 404))
        if response.status == 404:
            return json_error(404, "not found")
        return Response(response.body, media_type=JSON_MEDIA_TYPE)

    async def lookup(request: Request) -> Response:
        ids = parse_ids(await read_json(request))
        response = await up.call("orders", "POST", "/orders/lookup", json={"ids": ids})
        return Response(response.body, media_type=JSON_MEDIA_TYPE)

    routes = [
        Route("/api/products", list_products, methods=["GET"]),
        Route("/api/products/{product_id}", get_product, methods=["GET"]),
        Route("/api/cart", cart, methods=["POST"]),
        Route("/api/checkout", checkout, methods=["POST"]),
        Route("/api/orders/lookup", lookup, methods=["POST"]),
        Route("/api/orders/{order_id}", get_order, methods=["GET"]),
    ]
    app = build_app(settings, keys, routes, internal=False, lifespan=lifespan)
    app.state.upstreams = up  # the breaker and the client, for tests and introspection
    breaker = up.breaker
    if breaker is not None:  # read at scrape time: an open breaker whose time is up is not open
        app.state.metrics.gauge(
            "shakeout_breaker_open", "1 while this replica's breaker to the dependency is open",
            {"dependency": "payments"}, lambda: 1.0 if breaker.state == "open" else 0.0,
        )  # fmt: skip
    return app
