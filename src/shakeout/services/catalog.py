"""Catalog: the fixed list of products and their prices (internal; requires the shared key).

Prices follow the live ``catalog.pricing`` flag (see ``flags``): ``list`` serves the seed
prices, ``sale`` takes 10% off, ``dynamic`` would ask a pricing engine the shop does not run and
so fails every product request with 503 (and readiness), and a value the catalog does not know
(a typo shipped by a platform that does not validate config) fails them with 500.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._config import ConfigStore
from ._keys import key_store
from ._middleware import build_app, json_error
from ._requests import ApiError
from ._settings import load_settings

SALE_PERCENT_OFF = 10

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


def priced(mode: str) -> tuple[dict[str, str | int], ...]:
    """The products with prices under a ``catalog.pricing`` mode; ApiError if it cannot price."""
    if mode == "list":
        return PRODUCTS
    if mode == "sale":
        return tuple(
            {**p, "price_cents": int(p["price_cents"]) * (100 - SALE_PERCENT_OFF) // 100}
            for p in PRODUCTS
        )
    if mode == "dynamic":
        raise ApiError("catalog.pricing=dynamic: the dynamic pricing engine is not deployed", 503)
    raise ApiError(f"catalog.pricing: unknown pricing mode {mode!r}", 500)


class _Bodies:
    """Encoded product bodies for one pricing mode, rebuilt only when the mode changes."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.all = b""
        self.one: dict[str, bytes] = {}

    def get(self, mode: str) -> _Bodies:
        if mode != self.mode:
            products = priced(mode)  # raises before anything is replaced
            self.all = json.dumps({"products": list(products)}, separators=(",", ":")).encode()
            self.one = {
                str(p["id"]): json.dumps(p, separators=(",", ":")).encode() for p in products
            }
            self.mode = mode
        return self


def create_app() -> Starlette:
    """Build the catalog app from the environment."""
    settings = load_settings("catalog")
    keys = key_store(settings)
    config = ConfigStore(settings.config_file, settings.zone)
    bodies = _Bodies()

    def current() -> _Bodies:
        return bodies.get(config.flags["catalog.pricing"])

    async def list_products(request: Request) -> Response:
        return Response(current().all, media_type="application/json")

    async def get_product(request: Request) -> Response:
        body = current().one.get(request.path_params["product_id"])
        if body is None:
            return json_error(404, "not found")
        return Response(body, media_type="application/json")

    async def ready_check() -> str | None:
        # The catalog is not ready when its live config cannot price products: a staged config
        # rollout sees it, and a health-checked router stops sending it traffic.
        try:
            current()
        except ApiError as exc:
            return f"config v{config.version}: {exc.message}"
        return None

    routes = [
        Route("/products", list_products, methods=["GET"]),
        Route("/products/{product_id}", get_product, methods=["GET"]),
    ]
    return build_app(settings, keys, routes, internal=True, ready_check=ready_check, config=config)
