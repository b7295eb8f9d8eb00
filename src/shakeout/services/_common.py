"""Plumbing shared by the shop services: settings, shared key, identity headers, fault knobs."""

from __future__ import annotations

import asyncio
import hashlib
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

from .flags import DEFAULTS, ConfigView, parse_config

log = logging.getLogger("shakeout.services")

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/statusz"})
KEY_HEADER = "X-Shakeout-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_BODY_BYTES = 2_000_000
MAX_ITEMS = 100
MAX_QUANTITY = 1000
MAX_LOOKUP_IDS = 10_000
KEY_CHECK_INTERVAL_S = 0.2
KEY_CACHE_TTL_S = 300.0
REFETCH_MIN_INTERVAL_S = 0.02  # an unknown key re-reads the store at most this often
"""How long cached credentials stay usable while the secret store is unreachable (default)."""
CONFIG_CHECK_INTERVAL_S = 0.2

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


def _env_path(environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name, "").strip()
    return Path(raw) if raw else None


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
    config_file: Path | None = None
    key_cache_ttl_s: float = KEY_CACHE_TTL_S
    key_refresh_s: float = KEY_CHECK_INTERVAL_S
    key_refetch_on_unknown: bool = True

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
            config_file=_env_path(env, "SHAKEOUT_CONFIG_FILE"),
            key_cache_ttl_s=(
                _env_float(env, "SHAKEOUT_KEY_CACHE_TTL_S", 0.0, 86_400.0)
                if env.get("SHAKEOUT_KEY_CACHE_TTL_S", "").strip()
                else KEY_CACHE_TTL_S
            ),
            key_refresh_s=(
                _env_float(env, "SHAKEOUT_KEY_REFRESH_S", 0.01, 60.0)
                if env.get("SHAKEOUT_KEY_REFRESH_S", "").strip()
                else KEY_CHECK_INTERVAL_S
            ),
            key_refetch_on_unknown=env.get("SHAKEOUT_KEY_REFETCH_ON_UNKNOWN", "1").strip() != "0",
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


def key_id(key: str | bytes) -> str:
    """A short, non-secret fingerprint of a key (what status pages and audit records show)."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:12]


class KeyStore:
    """The shared key, fetched from the secret store (a JSON file standing in for it).

    The store is polled at most every ``check_interval_s`` (on the request path; no watcher
    thread) and re-read when the file's identity, mtime or size change. When the store is
    unreachable (the file is missing or invalid) the last good keys stay in use as cached
    credentials for ``cache_ttl_s`` after the last successful fetch; after that the store fails
    closed (no key: 503). ``cache_ttl_s=0`` means no cache at all; ``None`` caches forever.
    """

    def __init__(
        self,
        path: Path,
        check_interval_s: float = KEY_CHECK_INTERVAL_S,
        cache_ttl_s: float | None = None,
        refetch_on_unknown: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Load the file now; a missing or invalid file leaves the store not loaded.

        ``refetch_on_unknown``: a presented key that is neither current nor previous makes the
        store re-read once (at most every ``REFETCH_MIN_INTERVAL_S``) before it is refused, so
        a caller that picked up a rotation first is not refused by a replica still polling.
        ``clock`` (intervals, cache age) and ``wall_clock`` (the overlap's end, an epoch time
        in the key file) are injectable so tests step time instead of sleeping.
        """
        self.path = path
        self._clock = clock
        self._wall_clock = wall_clock
        self._refetch_on_unknown = refetch_on_unknown
        self._next_refetch = 0.0
        self._interval = check_interval_s
        self._ttl = cache_ttl_s
        self._next_check = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._keys: _Keys | None = None
        self._fetched_at = 0.0
        self._store_down_since: float | None = None
        self.error: str | None = "not loaded yet"
        self.refresh(force=True)

    @property
    def source(self) -> str:
        """Where the keys in use come from: ``store``, ``cache`` (store unreachable) or ``none``."""
        if self._keys is None:
            return "none"
        return "store" if self._store_down_since is None else "cache"

    def status(self) -> dict[str, Any]:
        """Non-secret view: key id, source, age of the cache, last error."""
        keys = self._keys
        now = self._clock()
        return {
            "key_id": None if keys is None else key_id(keys.current),
            "previous_key_id": None
            if keys is None or keys.previous is None
            else key_id(keys.previous),
            "source": self.source,
            "cached_for_s": None
            if self._store_down_since is None
            else round(now - self._store_down_since, 3),
            "cache_ttl_s": self._ttl,
            "error": self.error,
        }

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
        now = self._clock()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"secret store unreachable: cannot stat {self.path}: {exc.strerror}")
            return
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature != self._signature:
            try:
                keys = _parse_secret(json.loads(self.path.read_bytes()))
            except (OSError, ValueError) as exc:
                self._fail(f"invalid key file {self.path}: {exc}")
                return
            self._signature = signature
            self._keys = keys
        if self._store_down_since is not None:
            log.warning("secret store reachable again; cached credentials replaced")
        self._fetched_at = now
        self._store_down_since = None
        self.error = None

    def _fail(self, message: str) -> None:
        now = self._clock()
        if self._store_down_since is None:
            self._store_down_since = now
        if self._keys is not None and self._ttl is not None and now - self._fetched_at >= self._ttl:
            # The cache is spent: fail closed rather than trust a key the store may have
            # revoked since. Forget the file signature so the next good fetch re-reads it.
            self._keys = None
            self._signature = None
            message = f"{message}; cached key expired (cache TTL {self._ttl:g} s)"
        elif self._keys is not None:
            message = f"{message}; serving with cached key"
        if message != self.error:
            log.warning("%s", message)
        self.error = message

    def accepts(self, presented: bytes | None) -> bool:
        """Whether ``presented`` is the current key, or the previous one within the overlap
        (re-reading the store once first when configured to, see ``refetch_on_unknown``)."""
        if self._known(presented):
            return True
        now = self._clock()
        if presented is None or not self._refetch_on_unknown or now < self._next_refetch:
            return False
        self._next_refetch = now + REFETCH_MIN_INTERVAL_S
        self.refresh(force=True)
        return self._known(presented)

    def _known(self, presented: bytes | None) -> bool:
        keys = self._keys
        if presented is None or keys is None:
            return False
        if hmac.compare_digest(presented, keys.current):
            return True
        return (
            keys.previous is not None
            and hmac.compare_digest(presented, keys.previous)
            and self._wall_clock() < keys.previous_until
        )


class ConfigStore:
    """The live config (feature flags) this replica applies, re-read when the platform changes it.

    Like ``KeyStore``: the platform's config file is stat'ed at most every
    ``check_interval_s`` on the request path and re-read when it changes; a file that goes
    missing or invalid keeps the last good config. Without a file (``path=None``) the flags keep
    their defaults. It also counts the requests served and the 5xx answered under the current
    config version, which the platform's staged config rollout reads from ``/statusz``.
    """

    def __init__(
        self, path: Path | None, zone: str, check_interval_s: float = CONFIG_CHECK_INTERVAL_S
    ) -> None:
        """Load the file now (if any); counters start at zero."""
        self.path = path
        self.zone = zone
        self._interval = check_interval_s
        self._next_check = 0.0
        self._signature: tuple[int, int, int] | None = None
        self.view = ConfigView(0, dict(DEFAULTS))
        self.error: str | None = None
        self.requests = 0
        self.errors = 0
        self.refresh(force=True)

    @property
    def flags(self) -> dict[str, str]:
        """The flag values in force."""
        return self.view.flags

    @property
    def version(self) -> int:
        """The config version in force (0: defaults, no file read yet)."""
        return self.view.version

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; cheap enough to call on every request."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            if signature == self._signature:
                return
            view = parse_config(json.loads(self.path.read_bytes()), self.zone)
        except (OSError, ValueError) as exc:
            message = f"config file {self.path}: {exc}; keeping config v{self.view.version}"
            if message != self.error:
                log.warning("%s", message)
            self.error = message
            return
        self._signature = signature
        self.error = None
        if view.version != self.view.version:
            self.requests = self.errors = 0  # the counters judge one config version
            log.warning("config v%d applied: %s", view.version, view.flags)
        self.view = view

    def record(self, status: int) -> None:
        """Count one answered request under the current config version."""
        self.requests += 1
        if status >= 500:
            self.errors += 1

    def status(self) -> dict[str, Any]:
        """What ``/statusz`` shows: version, flags, counters, last error."""
        return {
            "version": self.view.version,
            "flags": self.view.flags,
            "requests": self.requests,
            "errors": self.errors,
            "error": self.error,
        }


def key_store(settings: Settings) -> KeyStore:
    """The service's key store, polling and caching as the platform configured it."""
    return KeyStore(
        settings.secret_file,
        check_interval_s=settings.key_refresh_s,
        cache_ttl_s=settings.key_cache_ttl_s,
        refetch_on_unknown=settings.key_refetch_on_unknown,
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

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        keys: KeyStore,
        internal: bool,
        config: ConfigStore | None = None,
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
        config = self.config if scope["path"] not in HEALTH_PATHS else None
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
    config: ConfigStore | None = None,
) -> Starlette:
    """Assemble a service: health routes, ``routes``, JSON errors and ShakeoutMiddleware.

    ``config`` is the service's live config (one is made from ``settings`` when not given);
    ``/statusz`` shows it with the key in use (by id) so the platform can check both.
    """
    live = config if config is not None else ConfigStore(settings.config_file, settings.zone)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        reason: str | None
        if settings.not_ready:
            reason = "SHAKEOUT_NOT_READY is set"
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

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/statusz", statusz, methods=["GET"]),
            *routes,
        ],
        middleware=[
            Middleware(
                ShakeoutMiddleware, settings=settings, keys=keys, internal=internal, config=live
            )
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.config = live
    return app
