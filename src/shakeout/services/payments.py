"""Payments: idempotent in-memory charges (internal; requires the shared key)."""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._keys import key_store
from ._middleware import build_app
from ._requests import BoundedDict, parse_int_field, read_json, require_idempotency_key
from ._settings import load_settings

MAX_REMEMBERED = 100_000
"""Idempotency keys remembered per replica (oldest forgotten first)."""


def create_app() -> Starlette:
    """Build the payments app from the environment."""
    settings = load_settings("payments")
    keys = key_store(settings)
    charges = BoundedDict(MAX_REMEMBERED)

    async def create_charge(request: Request) -> Response:
        key = require_idempotency_key(request)
        amount = parse_int_field(await read_json(request), "amount_cents")
        existing = charges.get(key)
        if existing is not None:
            return JSONResponse(existing, status_code=200)
        charge = {"charge_id": f"ch_{uuid.uuid4().hex}", "amount_cents": amount}
        charges[key] = charge
        return JSONResponse(charge, status_code=201)

    routes = [Route("/charges", create_charge, methods=["POST"])]
    return build_app(settings, keys, routes, internal=True)
