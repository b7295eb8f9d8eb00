"""Contracts between the platform and the services it runs: one type per thing they exchange.

* ``ServiceSettings``: a replica's environment. The platform writes it (``to_env``), the
  services read it (``from_env``).
* ``PaymentsPolicy``: how the gateway calls payments. The target file's
  ``platform.dependencies.payments`` section is validated into it (field bounds in each
  field's ``metadata``), the platform passes it to gateway replicas (``to_env``) and the gateway
  reads it back (``from_env``).
* ``SharedKeyDocument``: the shared-key file (the secret store's secret): written on each
  rotation (``dumps``), read by the services and the platform (``loads``).

A leaf module: the standard library only, so every service process can import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

KEY_HEADER = "X-Shakeout-Key"
"""The request header that carries the shared key to an internal service."""
CALLER_ZONE_HEADER = "X-Shakeout-Caller-Zone"
"""The request header that names the calling replica's zone (for zone-aware routing)."""
KEY_REFRESH_S = 0.2
"""How often a replica polls the secret store for the shared key (default)."""
KEY_CACHE_TTL_S = 300.0
"""How long cached credentials stay usable while the secret store is unreachable (default)."""
SHOP_SERVICES = ("gateway", "catalog", "orders", "payments", "inventory")
"""The services whose ``<NAME>_URL`` a replica reads (see ``url_variable``)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def url_variable(service: str) -> str:
    """The environment variable that carries the base URL of ``service`` (``ORDERS_URL``)."""
    return f"{service.upper().replace('-', '_')}_URL"


def key_id(key: str | bytes) -> str:
    """A short, non-secret fingerprint of a key (what status pages and audit records show)."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:12]


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


def _env_bounded(environ: Mapping[str, str], name: str, spec: Field[Any], kind: type) -> Any:
    """``name`` parsed as ``kind`` within the bounds of ``spec`` (its ``ge``, ``gt``, ``le``
    metadata, as the target file validates them); the field's default when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return spec.default
    noun = "an integer" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected {noun}") from None
    bounds = spec.metadata
    low = f"at least {bounds['ge']:g}" if "ge" in bounds else f"above {bounds['gt']:g}"
    above = value >= bounds["ge"] if "ge" in bounds else value > bounds["gt"]
    if not (above and value <= bounds["le"]):  # also refuses NaN
        raise ValueError(f"{name}={raw!r}: expected {noun} {low} and at most {bounds['le']:g}")
    return value


def _g(value: float) -> str:
    """A number as short as ``:g`` writes it, unless that would lose precision."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What one replica reads from its environment, and what the platform writes there."""

    ENV: ClassVar[Mapping[str, str]] = {
        "service": "SHAKEOUT_SERVICE",
        "version": "SHAKEOUT_VERSION",
        "zone": "SHAKEOUT_ZONE",
        "replica": "SHAKEOUT_REPLICA",
        "secret_file": "SHAKEOUT_SECRET_FILE",
        "data_dir": "SHAKEOUT_DATA_DIR",
        "config_file": "SHAKEOUT_CONFIG_FILE",
        "key_refresh_s": "SHAKEOUT_KEY_REFRESH_S",
        "key_cache_ttl_s": "SHAKEOUT_KEY_CACHE_TTL_S",
        "key_refetch_on_unknown": "SHAKEOUT_KEY_REFETCH_ON_UNKNOWN",
        "crash_on_start": "SHAKEOUT_CRASH_ON_START",
        "error_rate": "SHAKEOUT_ERROR_RATE",
        "extra_latency_ms": "SHAKEOUT_EXTRA_LATENCY_MS",
        "not_ready": "SHAKEOUT_NOT_READY",
        "warmup_s": "SHAKEOUT_WARMUP_S",
    }
    """The variable of each field; ``urls`` are ``<NAME>_URL`` (see ``url_variable``)."""

    service: str
    version: str
    zone: str
    replica: str
    secret_file: Path
    data_dir: Path | None = None
    config_file: Path | None = None
    urls: Mapping[str, str] = field(default_factory=dict)
    """Base URL of each service by name (no trailing slash)."""
    key_refresh_s: float = KEY_REFRESH_S
    key_cache_ttl_s: float = KEY_CACHE_TTL_S
    key_refetch_on_unknown: bool = True
    # A replica's warm-up (connection pools, caches): for this long after it starts it answers
    # 503 and its readiness probe says so. It is why readiness probes exist: a platform that
    # sends traffic to a replica before it is ready sees these errors.
    warmup_s: float = 0.0
    # Fault knobs: set by faults (a replica's own environment), never by the platform itself.
    crash_on_start: bool = False
    error_rate: float = 0.0
    extra_latency_ms: float = 0.0
    not_ready: bool = False

    @property
    def catalog_url(self) -> str | None:
        """Base URL of the catalog, if set."""
        return self.urls.get("catalog")

    @property
    def orders_url(self) -> str | None:
        """Base URL of orders, if set."""
        return self.urls.get("orders")

    @property
    def payments_url(self) -> str | None:
        """Base URL of payments, if set."""
        return self.urls.get("payments")

    @property
    def inventory_url(self) -> str | None:
        """Base URL of the inventory, if set."""
        return self.urls.get("inventory")

    @classmethod
    def from_env(
        cls,
        service: str,
        environ: Mapping[str, str] | None = None,
        *,
        services: Iterable[str] = SHOP_SERVICES,
    ) -> ServiceSettings:
        """Read the SHAKEOUT_* variables and the ``<NAME>_URL`` of ``services``; ``service``
        names the replica when SHAKEOUT_SERVICE does not. ValueError names a bad variable."""
        env = os.environ if environ is None else environ
        var = cls.ENV

        def text(name: str) -> str:
            return env.get(var[name], "").strip()

        name = text("service") or service
        secret = text("secret_file")
        if not secret:
            raise ValueError(f"{name}: {var['secret_file']} is required (path of the shared key)")
        urls = {svc: _env_url(env, url_variable(svc)) for svc in services}
        return cls(
            service=name,
            version=text("version") or "v1",
            zone=text("zone") or "a",
            replica=text("replica") or f"{name}-0",
            secret_file=Path(secret),
            data_dir=_env_path(env, var["data_dir"]),
            config_file=_env_path(env, var["config_file"]),
            urls={svc: url for svc, url in urls.items() if url is not None},
            key_refresh_s=(
                _env_float(env, var["key_refresh_s"], 0.01, 60.0)
                if text("key_refresh_s")
                else KEY_REFRESH_S
            ),
            key_cache_ttl_s=(
                _env_float(env, var["key_cache_ttl_s"], 0.0, 86_400.0)
                if text("key_cache_ttl_s")
                else KEY_CACHE_TTL_S
            ),
            key_refetch_on_unknown=env.get(var["key_refetch_on_unknown"], "1").strip() != "0",
            warmup_s=_env_float(env, var["warmup_s"], 0.0, 600.0),
            crash_on_start=_env_bool(env, var["crash_on_start"]),
            error_rate=_env_float(env, var["error_rate"], 0.0, 1.0),
            extra_latency_ms=_env_float(env, var["extra_latency_ms"], 0.0, 600_000.0),
            not_ready=_env_bool(env, var["not_ready"]),
        )

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` reads back as these settings (fault knobs only when set)."""
        var = self.ENV
        env = {
            var["service"]: self.service,
            var["version"]: self.version,
            var["zone"]: self.zone,
            var["replica"]: self.replica,
            var["secret_file"]: str(self.secret_file),
        }
        if self.data_dir is not None:
            env[var["data_dir"]] = str(self.data_dir)
        if self.config_file is not None:
            env[var["config_file"]] = str(self.config_file)
        env[var["key_refresh_s"]] = str(float(self.key_refresh_s))
        env[var["key_cache_ttl_s"]] = str(float(self.key_cache_ttl_s))
        env[var["key_refetch_on_unknown"]] = "1" if self.key_refetch_on_unknown else "0"
        env.update({url_variable(svc): url for svc, url in self.urls.items()})
        if self.warmup_s:
            env[var["warmup_s"]] = str(float(self.warmup_s))
        if self.crash_on_start:
            env[var["crash_on_start"]] = "1"
        if self.error_rate:
            env[var["error_rate"]] = str(float(self.error_rate))
        if self.extra_latency_ms:
            env[var["extra_latency_ms"]] = str(float(self.extra_latency_ms))
        if self.not_ready:
            env[var["not_ready"]] = "1"
        return env

    def identity_headers(self) -> list[tuple[bytes, bytes]]:
        """The raw ``X-Shakeout-*`` identity headers added to every response."""
        return [
            (b"x-shakeout-service", self.service.encode("latin-1")),
            (b"x-shakeout-version", self.version.encode("latin-1")),
            (b"x-shakeout-zone", self.zone.encode("latin-1")),
            (b"x-shakeout-replica", self.replica.encode("latin-1")),
        ]


@dataclass(frozen=True, slots=True)
class BreakerSpec:
    """A circuit breaker: ``failures`` consecutive failed calls open it for ``open_s``."""

    failures: int = field(default=0, metadata={"ge": 0, "le": 1000})
    """0: no breaker."""
    open_s: float = field(default=5.0, metadata={"gt": 0, "le": 600})


@dataclass(frozen=True, slots=True)
class PaymentsPolicy:
    """How the gateway calls payments: timeout, retries, breaker, degradation.

    ``timeout_ms`` bounds each call (None: the gateway's default for every upstream call);
    ``retries`` follow fast failures, the first after ``retry_backoff_ms``, doubling; with
    ``defer_on_failure`` a checkout whose payment fails is accepted with its payment pending.
    """

    ENV: ClassVar[Mapping[str, str]] = {
        "timeout_ms": "SHAKEOUT_PAYMENTS_TIMEOUT_MS",
        "retries": "SHAKEOUT_PAYMENTS_RETRIES",
        "retry_backoff_ms": "SHAKEOUT_PAYMENTS_RETRY_BACKOFF_MS",
        "breaker.failures": "SHAKEOUT_BREAKER_FAILURES",
        "breaker.open_s": "SHAKEOUT_BREAKER_OPEN_S",
        "defer_on_failure": "SHAKEOUT_PAYMENTS_DEFER",
    }
    """The variable of each field (of the gateway's replicas)."""

    timeout_ms: int | None = field(default=None, metadata={"ge": 1, "le": 120_000})
    retries: int = field(default=0, metadata={"ge": 0, "le": 5})
    retry_backoff_ms: float = field(default=20.0, metadata={"ge": 0, "le": 10_000})
    breaker: BreakerSpec = BreakerSpec()
    defer_on_failure: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PaymentsPolicy:
        """Read the policy from the variables in ``ENV`` (unset: the field's default; a
        timeout of 0: none). ValueError names a bad variable."""
        env = os.environ if environ is None else environ
        var, spec = cls.ENV, {f.name: f for f in fields(cls)}
        breaker = {f.name: f for f in fields(BreakerSpec)}
        timeout_var = var["timeout_ms"]
        timeout = _env_float(env, timeout_var, 0.0, spec["timeout_ms"].metadata["le"])
        if not timeout.is_integer():
            raise ValueError(f"{timeout_var}={env[timeout_var]!r}: expected a whole number")
        return cls(
            timeout_ms=int(timeout) or None,
            retries=_env_bounded(env, var["retries"], spec["retries"], int),
            retry_backoff_ms=float(
                _env_bounded(env, var["retry_backoff_ms"], spec["retry_backoff_ms"], float)
            ),
            breaker=BreakerSpec(
                failures=_env_bounded(env, var["breaker.failures"], breaker["failures"], int),
                open_s=float(_env_bounded(env, var["breaker.open_s"], breaker["open_s"], float)),
            ),
            defer_on_failure=_env_bool(env, var["defer_on_failure"]),
        )

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` reads back as this policy."""
        var = self.ENV
        env = {
            var["retries"]: str(self.retries),
            var["retry_backoff_ms"]: _g(self.retry_backoff_ms),
            var["breaker.failures"]: str(self.breaker.failures),
            var["breaker.open_s"]: _g(self.breaker.open_s),
            var["defer_on_failure"]: "1" if self.defer_on_failure else "0",
        }
        if self.timeout_ms is not None:
            env[var["timeout_ms"]] = str(self.timeout_ms)
        return env


@dataclass(frozen=True, slots=True, repr=False)
class SharedKeyDocument:
    """The shared-key file: the key callers send and the previous one, accepted until
    ``rotated_at + overlap_s`` (epoch seconds) so that a rotation refuses no caller.

    Its ``repr`` shows the keys' ids, never the keys (a traceback or a failed assertion that
    prints it ends up in logs and reports)."""

    current: str
    previous: str | None = None
    rotated_at: float = 0.0
    overlap_s: float = 0.0

    def __repr__(self) -> str:
        previous = "None" if self.previous is None else f"<key {key_id(self.previous)}>"
        return (
            f"SharedKeyDocument(current=<key {key_id(self.current)}>, previous={previous}, "
            f"rotated_at={self.rotated_at!r}, overlap_s={self.overlap_s!r})"
        )

    @property
    def previous_until(self) -> float:
        """When the previous key stops being accepted (epoch seconds)."""
        return self.rotated_at + self.overlap_s

    def dumps(self) -> str:
        """The document as JSON."""
        return json.dumps(
            {
                "current": self.current,
                "previous": self.previous,
                "rotated_at": self.rotated_at,
                "overlap_s": self.overlap_s,
            }
        )

    @classmethod
    def loads(cls, text: str | bytes) -> SharedKeyDocument:
        """Parse a document; ValueError says what is wrong with it."""
        data = json.loads(text)
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
        for name, value in (("rotated_at", rotated_at), ("overlap_s", overlap_s)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name!r} must be a number")
        return cls(current, previous, float(rotated_at), float(overlap_s))


__all__ = [
    "KEY_CACHE_TTL_S",
    "KEY_HEADER",
    "KEY_REFRESH_S",
    "SHOP_SERVICES",
    "BreakerSpec",
    "PaymentsPolicy",
    "ServiceSettings",
    "SharedKeyDocument",
    "key_id",
    "url_variable",
]
