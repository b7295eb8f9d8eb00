"""The router: one stable port per service, load-balanced over the replicas the supervisor allows.

It plays the part of a Kubernetes Service plus a small slice of a mesh sidecar:

* traffic goes only to routable replicas (ready ones, when health checks are on);
* traffic is split between versions by weight (canary), then round-robin within a version, or
  least-request (Envoy's power of two choices; in turn while nothing is in flight: a replica
  that stopped answering keeps its requests in flight and is picked less and less);
* with ``zone_aware``, a replica's request goes to a replica in its own zone while there is
  one (the caller names its zone in ``X-Shakeout-Caller-Zone``; Envoy's zone-aware routing);
* each attempt has its own timeout (Envoy's ``per_try_timeout``) inside the whole request's;
* an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, any request carrying an
  ``Idempotency-Key``, or one of the target's ``safe_routes``) that fails to connect, times
  out or gets a 5xx is retried on another
  replica (Envoy's ``retry_on: 5xx``), in another zone where there is one, while the
  service's retry budget allows it;
* a replica is ejected for a while after consecutive failures (outlier detection);
* a replica of a service with a capacity (``platform.capacity``, requests per second) serves
  at most that rate: beyond it the request is answered 503 at once, as a saturated server
  would, and retried elsewhere where that is allowed;
* every arrival and every attempt's outcome is recorded (``ClusterView.traffic``) for the
  autoscaler and the canary analysis, and a gateway's ``X-Shakeout-Breaker`` header changes
  become ``breaker_opened`` / ``breaker_closed`` events.

The router is an ASGI app served by uvicorn on several sockets at once; the listening port of a
request (``scope["server"]``) says which service it is for. Upstream calls use aiohttp: inside
a uvicorn server, httpx's async client added 10-25 ms per call at 20 idle-ish keep-alive
connections (measured: median 25 ms against 4 ms for aiohttp, the upstream answering in 2 ms).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from shakeout.contracts import CALLER_ZONE_HEADER
from shakeout.platform.metrics import PlatformMetrics
from shakeout.platform.replicas import Replica
from shakeout.platform.view import ClusterView

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_BREAKER_HEADER = b"x-shakeout-breaker"
_CALLER_ZONE = CALLER_ZONE_HEADER.lower()
SATURATION_BURST_S = 1.0
"""A replica's token bucket holds one second of its capacity: a short burst passes (as a
server's queue would absorb it), a sustained rate beyond the capacity does not."""
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)


class _NoReplica(Exception):
    pass


class _Bucket:
    """A token bucket: ``rate`` requests per second with a burst of ``burst``.

    Hand-written (a dozen lines) because the router must refuse at once when the bucket is
    empty, as a saturated server does; rate-limiter libraries such as aiolimiter make the
    caller wait for capacity instead.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Router:
    """ASGI app routing each service port to that service's replicas."""

    def __init__(
        self, supervisor: ClusterView, ports: dict[int, str], metrics: PlatformMetrics | None = None
    ):
        self.supervisor = supervisor
        self.metrics = metrics if metrics is not None else PlatformMetrics(supervisor)
        self.policy = supervisor.spec.router
        self.ports = ports
        self._rr: dict[str, itertools.count[int]] = {}
        self._failures: dict[str, int] = {}
        self._ejected_until: dict[str, float] = {}
        self._rng = random.Random()
        self._buckets: dict[str, _Bucket] = {}
        self._breakers: dict[str, str] = {}
        self.in_flight: dict[str, int] = {}
        self._safe_routes = frozenset(self.policy.safe_routes)
        self._active: dict[str, int] = {}  # requests in flight per service
        self._retrying: dict[str, int] = {}  # of which on a retry
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=self.policy.timeout_s, sock_connect=self.policy.connect_timeout_s
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The upstream connection pool (created on the serving loop at first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=2.0),
                timeout=self._timeout,
                auto_decompress=False,
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        """Close upstream connections."""
        if self._session is not None:
            await self._session.close()

    # -- choosing a replica ------------------------------------------------------------------

    def pick(
        self,
        service: str,
        exclude: set[str],
        avoid_zones: frozenset[str] = frozenset(),
        caller_zone: str | None = None,
    ) -> Replica:
        """Choose a replica: a version by weight, then, among that version's replicas not
        ejected, round-robin or least-request. A retry passes the zones it already tried in
        ``avoid_zones``: a replica elsewhere is preferred while there is one (Envoy's retry
        priority across localities), because what failed there (a frozen or partitioned
        zone) likely holds the zone's other replicas too. With ``zone_aware``, a caller's own
        zone (``caller_zone``) is preferred within the chosen version.

        Ejection never moves traffic to another version (each version is its own cluster, as
        in Envoy's weighted clusters): when every replica of the chosen version is ejected,
        they are all used anyway (Envoy's panic threshold). Otherwise a slow or failing new
        version would be hidden behind the old one it replaced.
        """
        replicas = [r for r in self.supervisor.routable(service) if r.id not in exclude]
        if not replicas:
            raise _NoReplica(service)
        if avoid_zones:
            replicas = [r for r in replicas if r.zone not in avoid_zones] or replicas
        by_version: dict[str, list[Replica]] = {}
        for replica in replicas:
            by_version.setdefault(replica.version, []).append(replica)
        weights = self.supervisor.services[service].weights
        versions = [v for v in by_version if weights.get(v, 0.0) > 0.0]
        if not versions:
            versions = list(by_version)
            chosen = versions[0]
        elif len(versions) == 1:
            chosen = versions[0]
        else:
            chosen = self._rng.choices(versions, [weights[v] for v in versions])[0]
        now = time.monotonic()
        pool = [
            r for r in by_version[chosen] if self._ejected_until.get(r.id, 0.0) <= now
        ] or by_version[chosen]
        if self.policy.zone_aware and caller_zone is not None:
            pool = [r for r in pool if r.zone == caller_zone] or pool
        busy = self.in_flight
        least = self.policy.balancer == "least_request" and len(pool) > 1
        if least and any(busy.get(r.id, 0) for r in pool):
            # Envoy's least_request: of two replicas picked at random, the one with fewer
            # requests in flight. Two random choices, not a full scan: a frozen replica whose
            # request just timed out looks idle, and a full scan sent it the very next request
            # while the healthy ones were busy (a zone-freeze drill's checkout p95 went from
            # under 300 ms to 367 ms). With nothing in flight anywhere the replicas take turns
            # below: a random tie break gave one gateway replica 4 of 30 sequential requests
            # and another 16, over its capacity.
            first, second = self._rng.sample(pool, 2)
            return second if busy.get(second.id, 0) < busy.get(first.id, 0) else first
        counter = self._rr.setdefault(f"{service}/{chosen}", itertools.count())
        return pool[next(counter) % len(pool)]

    def _may_retry(self, service: str) -> bool:
        """Envoy's retry budget: retries in flight within a share of the requests in flight."""
        budget = max(
            self.policy.min_retry_concurrency,
            self.policy.retry_budget_pct / 100.0 * self._active.get(service, 0),
        )
        return self._retrying.get(service, 0) < budget

    def _record(self, replica: Replica, ok: bool) -> None:
        if ok:
            self._failures.pop(replica.id, None)
            return
        count = self._failures.get(replica.id, 0) + 1
        self._failures[replica.id] = count
        threshold = self.policy.eject_after_failures
        if threshold and count >= threshold:
            self._failures.pop(replica.id, None)
            self._ejected_until[replica.id] = time.monotonic() + self.policy.ejection_s
            self.metrics.ejections.labels(replica.service).inc()
            self.supervisor.event("replica_ejected", replica=replica.id, failures=count)

    def _admit(self, replica: Replica) -> bool:
        """Whether the replica has capacity for one more request now."""
        rate = self.supervisor.spec.capacity.get(replica.service)
        if rate is None:
            return True
        now = time.monotonic()
        bucket = self._buckets.get(replica.id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[replica.id] = _Bucket(
                rate, max(1.0, rate * SATURATION_BURST_S), now
            )
        return bucket.take(now)

    def _watch_breaker(self, replica: Replica, headers: list[tuple[bytes, bytes]]) -> None:
        """Turn a change of a replica's reported breaker state into a platform event."""
        for key, value in headers:
            if key.lower() != _BREAKER_HEADER:
                continue
            for part in value.decode("latin-1").split(","):
                dependency, _, state = part.strip().partition("=")
                ident = f"{replica.id}/{dependency}"
                before = self._breakers.get(ident, "closed")
                if state == before:
                    continue
                self._breakers[ident] = state
                if state == "open":
                    self.supervisor.event(
                        "breaker_opened", replica=replica.id, dependency=dependency
                    )
                elif state == "closed":
                    self.supervisor.event(
                        "breaker_closed", replica=replica.id, dependency=dependency
                    )
            return

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        service = self.ports[scope["server"][1]]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.lower() not in _HOP_BY_HOP
        ]
        retryable = (
            scope["method"] in _IDEMPOTENT
            or any(k.lower() == "idempotency-key" for k, _ in headers)
            or f"{scope['method']} {scope['path']}" in self._safe_routes
        )
        path = scope["raw_path"] or scope["path"].encode()
        if scope["query_string"]:
            path += b"?" + scope["query_string"]
        status, out_headers, content = await self._forward(
            service, scope["method"], path.decode("latin-1"), headers, body, retryable
        )
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})

    async def _forward(
        self,
        service: str,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        retryable: bool,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self._active[service] = self._active.get(service, 0) + 1
        retry = _Retry(self, service)
        try:
            answer = await self._attempts(service, method, path, headers, body, retryable, retry)
            self.metrics.responses.labels(service, str(answer[0])).inc()
            return answer
        finally:
            self._active[service] -= 1
            retry.done()

    async def _attempts(
        self,
        service: str,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        retryable: bool,
        retry: _Retry,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        tried: set[str] = set()
        tried_zones: set[str] = set()
        caller_zone = next((v for k, v in headers if k.lower() == _CALLER_ZONE), None)
        attempts = 1 + (self.policy.retries if retryable else 0)
        error = "no ready replica"
        traffic = self.supervisor.traffic
        traffic.arrival(service)
        saturated = False
        deadline = time.monotonic() + self.policy.timeout_s
        per_try = self.policy.per_try(service)
        for attempt in range(attempts):
            if attempt and not retry.start():
                error += " (retry budget spent)"
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                replica = self.pick(service, tried, frozenset(tried_zones), caller_zone)
            except _NoReplica:
                break
            tried.add(replica.id)
            tried_zones.add(replica.zone)
            attempt_of = self.metrics.attempt(replica, retried=attempt > 0)
            if not self._admit(replica):
                # The replica is at capacity: it answers 503 at once. That is its answer (the
                # canary analysis sees it) but not a sign of a broken replica (no ejection).
                traffic.outcome(service, replica.version, 0.0, ok=False)
                attempt_of("saturated")
                error, saturated = f"upstream {replica.id} saturated", True
                continue
            saturated = False
            started = time.monotonic()
            limit = left if per_try is None else min(per_try, left)
            self.in_flight[replica.id] = self.in_flight.get(replica.id, 0) + 1
            try:
                async with self.session.request(
                    method,
                    URL(replica.url + path, encoded=True),
                    headers=CIMultiDict(headers),
                    data=body or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=limit, sock_connect=self.policy.connect_timeout_s
                    ),
                ) as response:
                    content = await response.read()
                    status = response.status
                    out = [(k, v) for k, v in response.raw_headers if k.lower() not in _HOP_BY_HOP]
            except TimeoutError:
                self._record(replica, ok=False)
                traffic.outcome(service, replica.version, time.monotonic() - started, ok=False)
                attempt_of("timeout")
                error = f"upstream {replica.id} timed out"
                continue
            except aiohttp.ClientError as exc:
                self._record(replica, ok=False)
                traffic.outcome(service, replica.version, time.monotonic() - started, ok=False)
                attempt_of("unreachable")
                error = f"upstream {replica.id} unreachable ({type(exc).__name__})"
                continue
            finally:
                self.in_flight[replica.id] -= 1
            self._record(replica, ok=status < 500)
            traffic.outcome(service, replica.version, time.monotonic() - started, status < 500)
            attempt_of("ok" if status < 500 else "error")
            self._watch_breaker(replica, out)
            if status in _RETRY_STATUS and len(tried) < attempts:
                continue
            return status, out, content
        status = 503 if error == "no ready replica" or saturated else 502
        if error.endswith("timed out") and status == 502:
            status = 504
        payload = json.dumps({"error": error, "service": service}).encode()
        return (
            status,
            [(b"content-type", b"application/json"), (b"x-shakeout-router", b"1")],
            payload,
        )


class _Retry:
    """One request's place in its service's retry budget: taken at its first retry, given
    back when the request ends."""

    __slots__ = ("_router", "_service", "_taken")

    def __init__(self, router: Router, service: str) -> None:
        self._router = router
        self._service = service
        self._taken = False

    def start(self) -> bool:
        """May this request retry now? (Its first retry takes a place in the budget.)"""
        if self._taken:
            return True
        if not self._router._may_retry(self._service):
            return False
        self._taken = True
        counts = self._router._retrying
        counts[self._service] = counts.get(self._service, 0) + 1
        return True

    def done(self) -> None:
        """The request ended: give its place back."""
        if self._taken:
            self._router._retrying[self._service] -= 1
            self._taken = False
