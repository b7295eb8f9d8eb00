"""The router's own detection, on real sockets: per-try timeout, retry budget, least-request."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

from shakeout.platform.replicas import Replica
from shakeout.platform.router import Router
from shakeout.platform.traffic import TrafficStats
from shakeout.platform.view import ClusterView
from shakeout.topology import RouterSpec


class _Supervisor:
    """The little of a supervisor the router reads: its policy, endpoints, weights, events."""

    def __init__(self, policy: RouterSpec, replicas: list[Replica]) -> None:
        self.spec = SimpleNamespace(router=policy, capacity={})
        self.services = {"svc": SimpleNamespace(weights={"v1": 1.0})}
        self.traffic = TrafficStats()
        self.events: list[str] = []
        self._replicas = replicas

    def routable(self, name: str) -> list[Replica]:
        return list(self._replicas)

    def event(self, kind: str, **detail: Any) -> None:
        self.events.append(kind)


def _replica(name: str, port: int = 0) -> Replica:
    return Replica(id=name, service="svc", version="v1", zone="a", port=port, env={})


def _router(policy: RouterSpec, replicas: list[Replica]) -> tuple[Router, _Supervisor]:
    sup = _Supervisor(policy, replicas)
    return Router(cast(ClusterView, sup), {}), sup


class _Upstream:
    """An HTTP server on loopback that answers 200 at once, or reads the request and never
    answers (a frozen process: the kernel accepted the connection, nobody replies). It
    records what it saw, and closes every connection it holds on ``close``."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.seen: list[str] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.seen.append("request")
            if self.answer:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
            await reader.read()  # until the client closes the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()


def _through(policy: RouterSpec) -> tuple[int, list[str], list[str], list[str]]:
    """One GET through a router whose first replica hangs and second answers: the status, what
    each upstream saw, and the router's events."""

    async def go() -> tuple[int, list[str], list[str], list[str]]:
        hung, ok = _Upstream(answer=False), _Upstream(answer=True)
        replicas = [_replica("hung", await hung.start()), _replica("ok", await ok.start())]
        router, sup = _router(policy, replicas)
        try:
            status, _, _ = await router._forward("svc", "GET", "/", [], b"", retryable=True)
        finally:
            await router.aclose()
            await hung.close()
            await ok.close()
        return status, hung.seen, ok.seen, sup.events

    return asyncio.run(go())


def test_a_replica_that_never_answers_costs_one_try_then_the_retry_answers() -> None:
    policy = RouterSpec(retries=1, per_try_timeout_s=0.2, timeout_s=5.0, balancer="round_robin")
    status, hung, ok, _ = _through(policy)
    assert (status, hung, ok) == (200, ["request"], ["request"])


def test_without_a_per_try_timeout_the_hung_try_takes_the_whole_request() -> None:
    policy = RouterSpec(retries=1, timeout_s=0.3, balancer="round_robin")
    status, hung, ok, _ = _through(policy)
    assert (status, hung, ok) == (504, ["request"], [])


def test_retries_stay_within_the_budget() -> None:
    policy = RouterSpec(retry_budget_pct=20, min_retry_concurrency=3)
    router, _ = _router(policy, [])
    router._active["svc"], router._retrying["svc"] = 10, 2
    assert router._may_retry("svc")
    router._retrying["svc"] = 3  # at least 3 may retry at once; 20% of 10 is fewer
    assert not router._may_retry("svc")
    router._active["svc"] = 30  # 20% of 30 requests in flight: 6 retries
    assert router._may_retry("svc")
    router._retrying["svc"] = 6
    assert not router._may_retry("svc")


def test_least_request_avoids_a_replica_that_holds_requests() -> None:
    replicas = [_replica("stuck"), _replica("b"), _replica("c")]
    picks: dict[str, Counter[str]] = {}
    for balancer in ("least_request", "round_robin"):
        router, _ = _router(RouterSpec.model_validate({"balancer": balancer}), replicas)
        router._rng = random.Random(7)
        router.in_flight = {"stuck": 2}  # requests sent to it that never came back
        picks[balancer] = Counter(router.pick("svc", set()).id for _ in range(300))
    assert picks["least_request"]["stuck"] == 0
    assert picks["round_robin"]["stuck"] == 100  # its turn, every third request


def test_least_request_shares_idle_replicas_evenly() -> None:
    """With nothing in flight (sequential requests) the replicas take turns: a random tie
    break gave one gateway replica 4 of 30 requests and another 16, over its capacity. With a
    request held somewhere it is the power of two choices again, and the replica holding it
    is not picked while the others are idle (200 seeds)."""
    replicas = [_replica("a"), _replica("b"), _replica("c")]
    for seed in range(200):
        router, _ = _router(RouterSpec.model_validate({"balancer": "least_request"}), replicas)
        router._rng = random.Random(seed)
        assert Counter(router.pick("svc", set()).id for _ in range(30)) == {
            "a": 10, "b": 10, "c": 10,
        }  # fmt: skip
        router.in_flight = {"a": 1}  # one request still held by a
        held = Counter(router.pick("svc", set()).id for _ in range(12))
        assert held["a"] == 0, (seed, held)


def test_a_retry_goes_to_another_zone_than_the_try_that_hung() -> None:
    """Zone b frozen (two hung replicas there) and one retry: the first try hangs in b, the
    retry leaves zone b and is answered, instead of timing out again in the same frozen zone
    (a 504 at twice the per-try timeout). Round-robin makes the turns exact: without the zone
    preference the retry's turn falls on b-1."""

    async def go() -> tuple[int, list[list[str]]]:
        upstreams = {
            name: _Upstream(answer=name.startswith("a")) for name in ("b-0", "a-0", "b-1", "a-1")
        }
        replicas = [_replica(name, await u.start()) for name, u in upstreams.items()]
        for replica in replicas:
            replica.zone = replica.id[0]
        policy = RouterSpec(retries=1, per_try_timeout_s=0.1, timeout_s=5.0, balancer="round_robin")
        router, _ = _router(policy, replicas)
        try:
            status, _, _ = await router._forward("svc", "GET", "/", [], b"", retryable=True)
        finally:
            await router.aclose()
            for upstream in upstreams.values():
                await upstream.close()
        return status, [u.seen for u in upstreams.values()]

    status, seen = asyncio.run(go())
    assert (status, seen) == (200, [["request"], [], [], ["request"]])


def test_zone_aware_routing_keeps_a_callers_requests_in_its_zone() -> None:
    """A caller in zone a reaches zone a's replica while it is there (a frozen zone b is then
    on nobody else's path); a caller in a zone without one, or a retry after zone a failed,
    goes elsewhere; without zone_aware the caller's zone is ignored."""
    replicas = [_replica("a-0"), _replica("b-0"), _replica("c-0")]
    for replica in replicas:
        replica.zone = replica.id[0]
    aware, _ = _router(RouterSpec(zone_aware=True, balancer="round_robin"), replicas)
    assert {aware.pick("svc", set(), caller_zone="a").id for _ in range(9)} == {"a-0"}
    assert {aware.pick("svc", {"a-0"}, frozenset("a"), "a").id for _ in range(9)} == {"b-0", "c-0"}
    assert {aware.pick("svc", set(), caller_zone="d").id for _ in range(9)} == {"a-0", "b-0", "c-0"}
    plain, _ = _router(RouterSpec(balancer="round_robin"), replicas)
    assert {plain.pick("svc", set(), caller_zone="a").id for _ in range(9)} == {"a-0", "b-0", "c-0"}
