"""Plumbing shared by the shop services: settings, shared key, identity headers, fault knobs."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

log = logging.getLogger("shakeout.services")

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
KEY_HEADER = "X-Shakeout-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_BODY_BYTES = 2_000_000
MAX_ITEMS = 100
MAX_QUANTITY = 1000
MAX_LOOKUP_IDS = 10_000
KEY_CHECK_INTERVAL_S = 0.2

_KEY_HEADER_RAW = KEY_HEADER.lower().encode("latin-1")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _env_bool(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}={environ[name]!r}: expected 1/0, true/false, yes/no or on/off")


def _env_float(environ: Mapping[str, str], name: str, low: float, high: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={raw!r}: expected a number from {low:g} to {high:g}")
    return value


def _env_url(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name, "").strip().rstrip("/")
    return raw or None


@dataclass(frozen=True, slots=True)
class Settings:
    """What one replica reads from its environment (see ``from_env`` for the variables)."""

    service: str
    version: str
    zone: str
    replica: str
    secret_file: Path
    data_dir: Path | None
    catalog_url: str | None
    orders_url: str | None
    payments_url: str | None
    inventory_url: str | None
    crash_on_start: bool
    error_rate: float
    extra_latency_ms: float
    not_ready: bool

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        """Read SHAKEOUT_* and *_URL variables; raise ValueError naming a bad variable."""
        env = os.environ if environ is None else environ
        name = env.get("SHAKEOUT_SERVICE", "").strip() or service
        secret = env.get("SHAKEOUT_SECRET_FILE", "").strip()
        if not secret:
            raise ValueError(f"{name}: SHAKEOUT_SECRET_FILE is required (path of the shared key)")
        data_dir = env.get("SHAKEOUT_DATA_DIR", "").strip()
        return cls(
            service=name,
            version=env.get("SHAKEOUT_VERSION", "").strip() or "v1",
            zone=env.get("SHAKEOUT_ZONE", "").strip() or "a",
            replica=env.get("SHAKEOUT_REPLICA", "").strip() or f"{name}-0",
            secret_file=Path(secret),
            data_dir=Path(data_dir) if data_dir else None,
            catalog_url=_env_url(env, "CATALOG_URL"),
            orders_url=_env_url(env, "ORDERS_URL"),
            payments_url=_env_url(env, "PAYMENTS_URL"),
            inventory_url=_env_url(env, "INVENTORY_URL"),
            crash_on_start=_env_bool(env, "SHAKEOUT_CRASH_ON_START"),
            error_rate=_env_float(env, "SHAKEOUT_ERROR_RATE", 0.0, 1.0),
            extra_latency_ms=_env_float(env, "SHAKEOUT_EXTRA_LATENCY_MS", 0.0, 600_000.0),
            not_ready=_env_bool(env, "SHAKEOUT_NOT_READY"),
        )

    def identity_headers(self) -> list[tuple[bytes, bytes]]:
        """The raw ``X-Shakeout-*`` identity headers added to every response."""
        return [
            (b"x-shakeout-service", self.service.encode("latin-1")),
            (b"x-shakeout-version", self.version.encode("latin-1")),
            (b"x-shakeout-zone", self.zone.encode("latin-1")),
            (b"x-shakeout-replica", self.replica.encode("latin-1")),
        ]


def load_settings(service: str) -> Settings:
    """Read the settings and honour SHAKEOUT_CRASH_ON_START (exit 1 before binding a port)."""
    settings = Settings.from_env(service)
    if settings.crash_on_start:
        print(
            f"{settings.replica}: SHAKEOUT_CRASH_ON_START is set, exiting with status 1",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1)
    return settings


class _Keys(NamedTuple):
    current: bytes
    previous: bytes | None
    previous_until: float


def _parse_secret(data: Any) -> _Keys:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    current = data.get("current")
    if not isinstance(current, str) or not current:
        raise ValueError("'current' must be a non-empty string")
    previous = data.get("previous")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise ValueError("'previous' must be a non-empty string or null")
    rotated_at = data.get("rotated_at", 0.0)
    overlap_s = data.get("overlap_s", 0.0)
    for field, value in (("rotated_at", rotated_at), ("overlap_s", overlap_s)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{field!r} must be a number")
    return _Keys(
        current=current.encode(),
        previous=previous.encode() if previous else None,
        previous_until=float(rotated_at) + float(overlap_s),
    )


class KeyStore:
    """The shared key, re-read from its JSON file when the file's identity, mtime or size change.

    The file is stat'ed at most every ``check_interval_s``; no watcher thread. A file that goes
    missing or invalid after a good load keeps the last good keys (the platform replaces it
    atomically, so that only happens when someone breaks it by hand).
    """

    def __init__(self, path: Path, check_interval_s: float = KEY_CHECK_INTERVAL_S) -> None:
        """Load the file now; a missing or invalid file leaves the store not loaded."""
        self.path = path
        self._interval = check_interval_s
        self._next_check = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._keys: _Keys | None = None
        self.error: str | None = "not loaded yet"
        self.refresh(force=True)

    @property
    def loaded(self) -> bool:
        """Whether a valid key file has been read."""
        return self._keys is not None

    @property
    def current(self) -> str | None:
        """The current key as last loaded (what callers send), or None if never loaded."""
        return None if self._keys is None else self._keys.current.decode()

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; cheap enough to call on every request."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"cannot stat {self.path}: {exc.strerror}")
            return
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return
        try:
            keys = _parse_secret(json.loads(self.path.read_bytes()))
        except (OSError, ValueError) as exc:
            self._fail(f"invalid key file {self.path}: {exc}")
            return
        self._signature = signature
        self._keys = keys
        self.error = None

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.warning("%s", message)
        self.error = message

    def accepts(self, presented: bytes | None) -> bool:
        """Whether ``presented`` is the current key, or the previous one within the overlap."""
        keys = self._keys
        if presented is None or keys is None:
            return False
        if hmac.compare_digest(presented, keys.current):
            return True
        return (
            keys.previous is not None
            and hmac.compare_digest(presented, keys.previous)
            and time.time() < keys.previous_until
        )


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

    Health paths (``/healthz``, ``/readyz``) skip everything but the identity headers. Other
    requests answer 503 while no key is loaded, 401 without an accepted ``X-Shakeout-Key``
    (internal services only), then suffer SHAKEOUT_EXTRA_LATENCY_MS and SHAKEOUT_ERROR_RATE.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, keys: KeyStore, internal: bool) -> None:
        """Wrap ``app``; ``internal`` services require the shared key on non-health paths."""
        self.app = app
        self.keys = keys
        self.internal = internal
        self.identity = settings.identity_headers()
        self.latency_s = settings.extra_latency_ms / 1000.0
        self.error_rate = settings.error_rate
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

        async def send_with_identity(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *identity]}
            await send(message)

        try:
            if scope["path"] not in HEALTH_PATHS:
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


class ApiError(Exception):
    """Answer ``{"error": message, **extra}`` with ``status``; 400s name the field at fault."""

    def __init__(self, message: str, status: int = 400, **extra: str) -> None:
        """Record the message, the status to answer with and extra string fields."""
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON; ApiError if absent, too large or invalid."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ApiError(f"request body larger than {MAX_BODY_BYTES} bytes", status=413)
    body = await request.body()
    if not body:
        raise ApiError("request body must be JSON")
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError("request body is not valid JSON") from None


def require_idempotency_key(request: Request) -> str:
    """The Idempotency-Key header; ApiError if missing, blank or too long."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key:
        raise ApiError(f"{IDEMPOTENCY_HEADER} header is required")
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise ApiError(
            f"{IDEMPOTENCY_HEADER} header must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"
        )
    return key


class LineItem(NamedTuple):
    """One cart line: a product and how many of it."""

    product_id: str
    quantity: int


def _body_field(body: Any, field: str) -> Any:
    if not isinstance(body, dict):
        raise ApiError("request body must be a JSON object")
    if field not in body:
        raise ApiError(f"{field} is required")
    return body[field]


def parse_items(body: Any) -> list[LineItem]:
    """Validate ``{"items": [{"product_id": str, "quantity": int}, ...]}``."""
    items = _body_field(body, "items")
    if not isinstance(items, list) or not items:
        raise ApiError("items must be a non-empty list")
    if len(items) > MAX_ITEMS:
        raise ApiError(f"items must have at most {MAX_ITEMS} entries")
    parsed: list[LineItem] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(f"items[{i}] must be an object")
        product_id = item.get("product_id")
        if not isinstance(product_id, str) or not 0 < len(product_id) <= 64:
            raise ApiError(f"items[{i}].product_id must be a non-empty string")
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise ApiError(f"items[{i}].quantity must be an integer")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ApiError(f"items[{i}].quantity must be from 1 to {MAX_QUANTITY}")
        parsed.append(LineItem(product_id, quantity))
    return parsed


def parse_int_field(body: Any, field: str, low: int = 0) -> int:
    """An integer field of a JSON object body, at least ``low``."""
    value = _body_field(body, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ApiError(f"{field} must be an integer >= {low}")
    return value


def parse_str_field(body: Any, field: str, max_chars: int = 200) -> str:
    """A non-empty string field of a JSON object body."""
    value = _body_field(body, field)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise ApiError(f"{field} must be a non-empty string of at most {max_chars} characters")
    return value


def parse_ids(body: Any) -> list[str]:
    """Validate ``{"ids": [str, ...]}`` (at most MAX_LOOKUP_IDS); duplicates are dropped."""
    ids = _body_field(body, "ids")
    if not isinstance(ids, list):
        raise ApiError("ids must be a list of strings")
    if len(ids) > MAX_LOOKUP_IDS:
        raise ApiError(f"ids must have at most {MAX_LOOKUP_IDS} entries")
    for i, value in enumerate(ids):
        if not isinstance(value, str):
            raise ApiError(f"ids[{i}] must be a string")
    return list(dict.fromkeys(ids))


class BoundedDict(dict[str, Any]):
    """An insertion-ordered dict that forgets its oldest entries beyond ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        """Create an empty dict holding at most ``max_entries`` keys."""
        super().__init__()
        self.max_entries = max_entries

    def __setitem__(self, key: str, value: Any) -> None:
        """Insert, then evict the oldest entries over the bound."""
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            del self[next(iter(self))]


ReadyCheck = Callable[[], Awaitable[str | None]]


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_error(exc.status, exc.message, **exc.extra)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "not found" if exc.status_code == 404 else str(exc.detail).lower()
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def build_app(
    settings: Settings,
    keys: KeyStore,
    routes: Sequence[BaseRoute],
    *,
    internal: bool,
    ready_check: ReadyCheck | None = None,
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    """Assemble a service: health routes, ``routes``, JSON errors and ShakeoutMiddleware."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        reason: str | None
        if settings.not_ready:
            reason = "SHAKEOUT_NOT_READY is set"
        else:
            keys.refresh()
            reason = keys.error if not keys.loaded else None
            if reason is None and ready_check is not None:
                reason = await ready_check()
        if reason is not None:
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *routes,
        ],
        middleware=[
            Middleware(ShakeoutMiddleware, settings=settings, keys=keys, internal=internal)
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    return app
