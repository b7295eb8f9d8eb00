"""Catalog: the fixed list of products and their prices (internal; requires the shared key)."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._common import KeyStore, build_app, json_error, load_settings

_SEED: tuple[tuple[str, int], ...] = (
    ("Trail running shoes", 8999),
    ("Merino wool socks", 1499),
    ("Rain shell jacket", 12900),
    ("Insulated water bottle", 2450),
    ("Headlamp 400 lm", 3999),
    ("Trekking poles (pair)", 7450),
    ("Daypack 22 l", 6900),
    ("Camp stove", 5499),
    ("Titanium spork", 899),
    ("Sleeping bag -5 C", 18900),
    ("Sleeping pad", 9950),
    ("Two-person tent", 32900),
    ("First-aid kit", 2799),
    ("Trail map set", 1250),
    ("Energy bars (12)", 1899),
    ("Sun hat", 2299),
    ("Gaiters", 3450),
    ("Compass", 1999),
    ("Dry bag 10 l", 1799),
    ("Camp mug", 1199),
)

PRODUCTS: tuple[dict[str, str | int], ...] = tuple(
    {"id": f"p{i}", "name": name, "price_cents": price}
    for i, (name, price) in enumerate(_SEED, start=1)
)
"""The seed products: ids ``p1`` .. ``p20``."""


def create_app() -> Starlette:
    """Build the catalog app from the environment."""
    settings = load_settings("catalog")
    keys = KeyStore(settings.secret_file)
    all_body = json.dumps({"products": list(PRODUCTS)}, separators=(",", ":")).encode()
    one_body = {str(p["id"]): json.dumps(p, separators=(",", ":")).encode() for p in PRODUCTS}

    async def list_products(request: Request) -> Response:
        return Response(all_body, media_type="application/json")

    async def get_product(request: Request) -> Response:
        body = one_body.get(request.path_params["product_id"])
        if body is None:
            return json_error(404, "not found")
        return Response(body, media_type="application/json")

    routes = [
        Route("/products", list_products, methods=["GET"]),
        Route("/products/{product_id}", get_product, methods=["GET"]),
    ]
    return build_app(settings, keys, routes, internal=True)
