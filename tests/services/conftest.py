"""Fixtures for the shop services: secret file, app factories under a controlled env, a shop."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from shakeout.contracts import SharedKeyDocument

INTERNAL = ("catalog", "orders", "payments", "inventory")
KEY = "key-one"
URL_VARS = frozenset({"CATALOG_URL", "ORDERS_URL", "PAYMENTS_URL", "INVENTORY_URL"})


def write_secret(
    path: Path,
    current: str,
    previous: str | None = None,
    *,
    rotated_at: float | None = None,
    overlap_s: float = 30.0,
) -> None:
    """Write the shared-key file atomically, the way the platform rotates it."""
    at = time.time() if rotated_at is None else rotated_at
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(SharedKeyDocument(current, previous, at, overlap_s).dumps())
    os.replace(tmp, path)


def is_service_var(name: str) -> bool:
    """Whether the services read the environment variable ``name``."""
    return name.startswith("SHAKEOUT_") or name in URL_VARS


def clean_env() -> dict[str, str]:
    """A copy of this process's environment without any variable the services read."""
    return {k: v for k, v in os.environ.items() if not is_service_var(k)}


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only."""
    return "asyncio"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A valid shared-key file whose current key is KEY."""
    path = tmp_path / "shared-key.json"
    write_secret(path, KEY)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The SHAKEOUT_DATA_DIR of the apps made by ``make_app``."""
    return tmp_path / "data"


class MakeApp(Protocol):
    """Signature of the ``make_app`` fixture."""

    def __call__(
        self, service: str, env: dict[str, str] | None = None, **kwargs: Any
    ) -> Starlette: ...


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch, secret_file: Path, data_dir: Path) -> MakeApp:
    """Build a service's app with a clean environment plus ``env``."""

    def make(service: str, env: dict[str, str] | None = None, **kwargs: Any) -> Starlette:
        module = importlib.import_module(f"shakeout.services.{service}")
        with monkeypatch.context() as m:
            for name in list(os.environ):
                if is_service_var(name):
                    m.delenv(name)
            m.setenv("SHAKEOUT_SERVICE", service)
            m.setenv("SHAKEOUT_SECRET_FILE", str(secret_file))
            m.setenv("SHAKEOUT_DATA_DIR", str(data_dir))
            for name, value in (env or {}).items():
                m.setenv(name, value)
            app: Starlette = module.create_app(**kwargs)
        return app

    return make


@contextlib.asynccontextmanager
async def serve(app: Starlette, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield a client talking to it in-process."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


class HostUpstream:
    """The gateway's ``Upstream`` for tests: dispatch by URL host to in-process apps.

    ``failures[host]`` is raised instead of calling ``host``; hosts in ``hang`` never answer;
    hosts in ``slow`` answer after that many seconds.
    """

    def __init__(self, apps: dict[str, Starlette]) -> None:
        """Route ``http://<name>/...`` to ``apps[name]``."""
        self.transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}
        self.failures: dict[str, Exception] = {}
        self.hang: set[str] = set()
        self.slow: dict[str, float] = {}  # host -> seconds before it answers (successfully)
        self.calls: list[tuple[str, str, str]] = []

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], json: Any = None
    ) -> tuple[int, bytes]:
        """Serve one request."""
        request = httpx.Request(method, url, headers=headers, json=json)
        host = request.url.host
        self.calls.append((host, method, request.url.path))
        if host in self.failures:
            raise self.failures[host]
        if host in self.hang:
            await anyio.sleep_forever()
        if host in self.slow:
            await anyio.sleep(self.slow[host])
        response = await self.transports[host].handle_async_request(request)
        return response.status_code, await response.aread()


@dataclass
class Shop:
    """All five apps in-process: ``client`` talks to the gateway."""

    client: httpx.AsyncClient
    apps: dict[str, Starlette]
    upstream: HostUpstream
    db_path: Path


@pytest.fixture
def shop_env() -> dict[str, dict[str, str]]:
    """Extra environment per service for the ``shop`` fixture (override to inject faults)."""
    return {}


@pytest.fixture
async def shop(
    make_app: MakeApp, data_dir: Path, shop_env: dict[str, dict[str, str]]
) -> AsyncIterator[Shop]:
    """The whole shop in-process, lifespans running."""
    apps = {name: make_app(name, shop_env.get(name)) for name in INTERNAL}
    upstream = HostUpstream(apps)
    urls = {f"{name.upper()}_URL": f"http://{name}" for name in INTERNAL}
    gateway = make_app("gateway", {**urls, **shop_env.get("gateway", {})}, upstream=upstream)
    async with (
        apps["orders"].router.lifespan_context(apps["orders"]),
        serve(gateway, "http://gateway") as client,
    ):
        yield Shop(client, {**apps, "gateway": gateway}, upstream, data_dir / "orders.sqlite3")


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 5.0
) -> None:
    """Poll ``check`` every 20 ms until it is true; fail naming ``what`` after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await anyio.sleep(0.02)


WriteKey = Callable[..., None]


@pytest.fixture
def write_key(secret_file: Path) -> WriteKey:
    """``write_key(current, previous=None, *, rotated_at=None, overlap_s=30.0)`` rotates the key."""

    def write(current: str, previous: str | None = None, **kwargs: float) -> None:
        write_secret(secret_file, current, previous, **kwargs)

    return write


@pytest.fixture(name="serve")
def serve_fixture() -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """The ``serve(app, base_url)`` context manager (a fixture, so tests need no imports)."""
    return serve


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Awaitable[None]]:
    """The ``eventually(check, what, timeout_s)`` poller."""
    return eventually
