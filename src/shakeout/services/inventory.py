"""Inventory: idempotent in-memory stock reservations (internal; requires the shared key)."""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._keys import key_store
from ._middleware import build_app, json_error
from ._requests import BoundedDict, parse_items, read_json, require_idempotency_key
from ._settings import load_settings

INITIAL_STOCK = 1_000_000_000
"""Units of every product a fresh replica holds: enough never to run out under load."""

MAX_REMEMBERED = 100_000
"""Idempotency keys remembered per replica (oldest forgotten first)."""


def create_app() -> Starlette:
    """Build the inventory app from the environment."""
    settings = load_settings("inventory")
    keys = key_store(settings)
    reservations = BoundedDict(MAX_REMEMBERED)
    stock: dict[str, int] = {}

    async def reserve(request: Request) -> Response:
        key = require_idempotency_key(request)
        items = parse_items(await read_json(request))
        existing = reservations.get(key)
        if existing is not None:
            return JSONResponse(existing, status_code=200)
        wanted: dict[str, int] = {}
        for item in items:
            wanted[item.product_id] = wanted.get(item.product_id, 0) + item.quantity
        for product_id, quantity in wanted.items():
            if stock.get(product_id, INITIAL_STOCK) < quantity:
                return json_error(409, f"insufficient stock of {product_id}")
        for product_id, quantity in wanted.items():
            stock[product_id] = stock.get(product_id, INITIAL_STOCK) - quantity
        reservation = {
            "reservation_id": f"res_{uuid.uuid4().hex}",
            "items": [{"product_id": p, "quantity": q} for p, q in wanted.items()],
        }
        reservations[key] = reservation
        return JSONResponse(reservation, status_code=201)

    routes = [Route("/reservations", reserve, methods=["POST"])]
    return build_app(settings, keys, routes, internal=True)
