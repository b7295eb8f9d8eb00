"""Every service's own request metrics, as the servers saw them (``prometheus_client``).

``shakeout_http_requests_total{method, route, status}`` and the latency histogram
``shakeout_http_request_duration_seconds{method, route}``, labelled by the route's template
(``/api/products/{product_id}``, never the raw path: one series per route, as
starlette-exporter and prometheus-fastapi-instrumentator do). The platform's Prometheus scrapes
``GET /metrics`` of every replica and adds ``service``, ``zone``, ``replica`` and ``version``
from its service discovery. Health and metrics paths are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
UNMATCHED = "unmatched"  # a path no route serves: one series, whatever the path


class RequestMetrics:
    """A registry of one service's request counter and latency histogram."""

    def __init__(self) -> None:
        """A fresh registry (one per app: tests build several apps in one process)."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "shakeout_http_requests", "requests answered, by route template and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "shakeout_http_request_duration_seconds", "time to answer, by route template",
            ["method", "route"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip

    def gauge(
        self, name: str, documentation: str, labels: dict[str, str], read: Callable[[], float]
    ) -> None:
        """A gauge whose value is read when Prometheus scrapes (a service's own state)."""
        gauge = Gauge(name, documentation, list(labels), registry=self.registry)
        gauge.labels(*labels.values()).set_function(read)

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics``: the exposition format."""
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")


class MetricsMiddleware:
    """Outermost ASGI middleware: counts every answer (gate rejections and injected faults
    included) under its route template."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RequestMetrics,
        routes: Sequence[BaseRoute],
        skip: frozenset[str],
    ) -> None:
        """Wrap ``app``; ``routes`` give the templates; ``skip`` paths are not counted."""
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.skip = skip | {METRICS_PATH}

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", UNMATCHED))
        return UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one scope; count it when it is an HTTP request outside ``skip``."""
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any answer: the server answers 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            method, route = scope["method"], self._route(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(time.perf_counter() - started)
