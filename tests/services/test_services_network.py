"""The gateway's real upstream path (aiohttp) over loopback sockets, with no fake upstream."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from shakeout.services import _upstream

if TYPE_CHECKING:
    from conftest import MakeApp

pytestmark = pytest.mark.anyio

INTERNAL = ("catalog", "orders", "payments", "inventory")
CART = {"items": [{"product_id": "p1", "quantity": 2}, {"product_id": "p4", "quantity": 1}]}
Serve = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@contextlib.asynccontextmanager
async def on_loopback(apps: dict[str, Starlette]) -> AsyncIterator[dict[str, str]]:
    """Serve ``apps`` from one in-process uvicorn, a loopback port each; yield their URLs."""
    with contextlib.ExitStack() as stack:
        sockets: list[socket.socket] = []
        by_port: dict[int, Starlette] = {}
        urls: dict[str, str] = {}
        for name, app in apps.items():
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            sockets.append(sock)
            by_port[port] = app
            urls[name] = f"http://127.0.0.1:{port}"

        async def by_local_port(scope: Scope, receive: Receive, send: Send) -> None:
            await by_port[scope["server"][1]](scope, receive, send)

        server = uvicorn.Server(
            uvicorn.Config(
                by_local_port, lifespan="off", ws="none", log_level="warning", access_log=False
            )
        )
        async with contextlib.AsyncExitStack() as lifespans:
            for app in apps.values():
                await lifespans.enter_async_context(app.router.lifespan_context(app))
            task = asyncio.create_task(server.serve(sockets=sockets))
            try:
                while not server.started:
                    if task.done():
                        task.result()
                        pytest.fail("uvicorn stopped before it started")
                    await asyncio.sleep(0.01)
                yield urls
            finally:
                server.should_exit = True
                await task


def gateway_env(url: str | dict[str, str]) -> dict[str, str]:
    """The *_URL variables: every dependency at ``url``, or each at ``url[name]``."""
    return {f"{name.upper()}_URL": url if isinstance(url, str) else url[name] for name in INTERNAL}


@pytest.fixture
async def internal_urls(make_app: MakeApp) -> AsyncIterator[dict[str, str]]:
    """The four internal services on real loopback ports."""
    async with on_loopback({name: make_app(name) for name in INTERNAL}) as urls:
        yield urls


async def test_shop_over_real_sockets(
    make_app: MakeApp, serve: Serve, internal_urls: dict[str, str]
) -> None:
    async with serve(make_app("gateway", gateway_env(internal_urls))) as client:
        listing = await client.get("/api/products")
        one = await client.get("/api/products/p2")
        unknown = await client.get("/api/products/p 9")  # sent upstream as /products/p%209
        cart = await client.post("/api/cart", json=CART)
        first = await client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "n-1"})
        again = await client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "n-1"})
        order_id = first.json()["order_id"]
        order = await client.get(f"/api/orders/{order_id}")
        lookup = await client.post("/api/orders/lookup", json={"ids": [order_id, "ghost"]})
    assert listing.status_code == 200
    assert len(listing.json()["products"]) == 20
    assert one.json() == listing.json()["products"][1]
    assert (unknown.status_code, unknown.json()) == (404, {"error": "not found"})
    price = {p["id"]: p["price_cents"] for p in listing.json()["products"]}
    assert cart.json()["total_cents"] == 2 * price["p1"] + price["p4"]
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order_id"] == order_id
    assert first.headers["X-Order-Id"] == order_id
    assert order.json()["items"] == CART["items"]
    assert lookup.json() == {"found": [order_id], "missing": ["ghost"], "duplicates": {}}


async def test_wrong_key_over_real_sockets_gets_502(
    make_app: MakeApp, serve: Serve, internal_urls: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "other-key.json"
    other.write_text('{"current": "stranger", "previous": null, "rotated_at": 0, "overlap_s": 0}')
    env = {**gateway_env(internal_urls), "SHAKEOUT_SECRET_FILE": str(other)}
    async with serve(make_app("gateway", env)) as client:
        response = await client.get("/api/products")
    assert response.status_code == 502
    assert response.json() == {"error": "catalog answered 401", "dependency": "catalog"}


@contextlib.asynccontextmanager
async def raw_server(behaviour: str) -> AsyncIterator[str]:
    """A loopback HTTP server that misbehaves as ``behaviour`` says; yield its URL."""
    products = json.dumps({"products": [{"id": "p1", "price_cents": 1}]}).encode()
    answers = {
        "redirect": b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
        "gzip": (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(gzip.compress(products))
        )
        + gzip.compress(products),
    }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if behaviour == "hang":
                await reader.read()  # until the gateway gives up and closes
            elif behaviour in answers:
                writer.write(answers[behaviour])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_hung_dependency_over_loopback_gives_504(
    make_app: MakeApp, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_upstream, "TOTAL_TIMEOUT_S", 0.2)
    async with raw_server("hang") as url, serve(make_app("gateway", gateway_env(url))) as client:
        response = await client.get("/api/products")
    # The dependency never answers: only the gateway's own timeout can have ended this.
    assert response.status_code == 504
    assert response.json() == {"error": "catalog timed out", "dependency": "catalog"}


async def test_dependency_dropping_the_connection_gives_503(
    make_app: MakeApp, serve: Serve
) -> None:
    async with raw_server("close") as url, serve(make_app("gateway", gateway_env(url))) as client:
        response = await client.get("/api/products")
    assert response.status_code == 503
    assert response.json()["dependency"] == "catalog"
    assert response.json()["error"].startswith("catalog unreachable (")


async def test_redirects_are_not_followed(make_app: MakeApp, serve: Serve) -> None:
    async with (
        raw_server("redirect") as url,
        serve(make_app("gateway", gateway_env(url))) as client,
    ):
        response = await client.get("/api/products")
    assert response.status_code == 502
    assert response.json() == {"error": "catalog answered 302", "dependency": "catalog"}


async def test_compressed_answers_are_relayed_decoded(make_app: MakeApp, serve: Serve) -> None:
    async with raw_server("gzip") as url, serve(make_app("gateway", gateway_env(url))) as client:
        response = await client.get("/api/products")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json() == {"products": [{"id": "p1", "price_cents": 1}]}
