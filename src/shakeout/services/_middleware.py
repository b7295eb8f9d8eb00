"""Every service's frame: identity headers, key gate, fault knobs, health routes, JSON errors."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from shakeout.contracts import KEY_HEADER, ServiceSettings

from ._config import ConfigStore
from ._keys import KeyStore
from ._metrics import METRICS_PATH, MetricsMiddleware, RequestMetrics
from ._requests import ApiError

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/statusz"})
_UNGATED = HEALTH_PATHS | {METRICS_PATH}  # no key, no injected fault: the platform's own reads
_KEY_HEADER_RAW = KEY_HEADER.lower().encode("latin-1")


def json_error(status: int, message: str, **extra: str) -> JSONResponse:
    """A JSON error response ``{"error": message, **extra}``."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def _raw_header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class ShakeoutMiddleware:
    """Pure ASGI middleware: identity headers on every response; key check and faults elsewhere.

    Health paths (``/healthz``, ``/readyz``) and ``/metrics`` skip everything but the identity
    headers. Other requests answer 503 while the replica warms up (``warm_until``, a
    ``time.monotonic()`` instant) or no key is loaded, 401 without an accepted
    ``X-Shakeout-Key`` (internal services only), then suffer SHAKEOUT_EXTRA_LATENCY_MS and
    SHAKEOUT_ERROR_RATE.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: ServiceSettings,
        keys: KeyStore,
        internal: bool,
        config: ConfigStore | None = None,
        warm_until: float = 0.0,
    ) -> None:
        """Wrap ``app``; ``internal`` services require the shared key on non-health paths.

        With ``config``, the live config is refreshed before and every non-health answer is
        counted under its version (the staged config rollout's error figures).
        """
        self.app = app
        self.keys = keys
        self.config = config
        self.internal = internal
        self.identity = settings.identity_headers()
        self.latency_s = settings.extra_latency_ms / 1000.0
        self.error_rate = settings.error_rate
        self.warm_until = warm_until
        self._warming = json_error(503, "warming up")
        self._not_loaded = json_error(503, "shared key not loaded")
        self._unauthorized = json_error(401, "unauthorized")
        self._injected = json_error(500, "injected")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or lifespan/websocket scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        identity = self.identity
        config = self.config if scope["path"] not in _UNGATED else None
        if config is not None:
            config.refresh()

        async def send_with_identity(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *identity]}
                if config is not None:
                    config.record(int(message["status"]))
            await send(message)

        try:
            if scope["path"] not in _UNGATED:
                rejection = await self._gate(scope)
                if rejection is not None:
                    await rejection(scope, receive, send_with_identity)
                    return
            await self.app(scope, receive, send_with_identity)
        except Exception:
            if not started:
                await json_error(500, "internal error")(scope, receive, send_with_identity)
            raise

    async def _gate(self, scope: Scope) -> Response | None:
        if self.warm_until and time.monotonic() < self.warm_until:
            return self._warming
        self.warm_until = 0.0
        keys = self.keys
        keys.refresh()
        if not keys.loaded:
            return self._not_loaded
        if self.internal and not keys.accepts(_raw_header(scope, _KEY_HEADER_RAW)):
            return self._unauthorized
        if self.latency_s > 0.0:
            await asyncio.sleep(self.latency_s)
        if self.error_rate > 0.0 and random.random() < self.error_rate:
            return self._injected
        return None


ReadyCheck = Callable[[], Awaitable[str | None]]


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_error(exc.status, exc.message, **exc.extra)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "not found" if exc.status_code == 404 else str(exc.detail).lower()
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def build_app(
    settings: ServiceSettings,
    keys: KeyStore,
    routes: Sequence[BaseRoute],
    *,
    internal: bool,
    ready_check: ReadyCheck | None = None,
    lifespan: Lifespan[Starlette] | None = None,
    config: ConfigStore | None = None,
) -> Starlette:
    """Assemble a service: health routes, ``routes``, JSON errors and ShakeoutMiddleware.

    ``config`` is the service's live config (one is made from ``settings`` when not given);
    ``/statusz`` shows it with the key in use (by id) so the platform can check both.
    """
    live = config if config is not None else ConfigStore(settings.config_file, settings.zone)
    warm_until = time.monotonic() + settings.warmup_s if settings.warmup_s else 0.0

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        reason: str | None
        warming = warm_until - time.monotonic()
        if settings.not_ready:
            reason = "SHAKEOUT_NOT_READY is set"
        elif warming > 0:
            reason = f"warming up ({warming:.1f} s left)"
        else:
            keys.refresh()
            live.refresh()
            reason = keys.error if not keys.loaded else None
            if reason is None and ready_check is not None:
                reason = await ready_check()
        if reason is not None:
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def statusz(request: Request) -> Response:
        keys.refresh()
        live.refresh()
        return JSONResponse(
            {
                "service": settings.service,
                "replica": settings.replica,
                "version": settings.version,
                "zone": settings.zone,
                "key": keys.status(),
                "config": live.status(),
            }
        )

    metrics = RequestMetrics()
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/statusz", statusz, methods=["GET"]),
            Route(METRICS_PATH, metrics.endpoint, methods=["GET"]),
            *routes,
        ],
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics, routes=routes, skip=HEALTH_PATHS),
            Middleware(
                ShakeoutMiddleware,
                settings=settings,
                keys=keys,
                internal=internal,
                config=live,
                warm_until=warm_until,
            ),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics  # a service adds gauges of its own state (the gateway's breaker)
    app.state.keys = keys
    app.state.config = live
    return app
