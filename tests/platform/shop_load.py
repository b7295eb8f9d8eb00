"""A small open-model load generator for platform tests: real HTTP through the router.

Locust is the product's load tool but runs in its own process and needs the harness around it;
these tests only need a bounded, paced stream of shop requests whose outcomes they can count,
so an asyncio loop with httpx does it (requests are sent when due, whether or not earlier ones
have answered, as in the drills' open model).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shakeout.platform import lifecycle

CART = {"items": [{"product_id": "p1", "quantity": 1}]}


@dataclass
class Result:
    """One request: journey, status (0: transport error), latency from when it was due."""

    journey: str
    status: int
    latency_s: float
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    """Every result of a load run."""

    results: list[Result] = field(default_factory=list)

    def of(self, journey: str | None = None) -> list[Result]:
        """Results of one journey (all with None)."""
        return [r for r in self.results if journey is None or r.journey == journey]

    def error_rate(self, journey: str | None = None) -> float:
        """Share of requests answered 5xx or not at all."""
        found = self.of(journey)
        return sum(1 for r in found if r.status == 0 or r.status >= 500) / max(len(found), 1)

    def p95_ms(self, journey: str | None = None) -> float:
        """95th percentile latency in ms (nearest rank)."""
        latencies = sorted(r.latency_s for r in self.of(journey))
        if not latencies:
            return 0.0
        return 1000.0 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]


async def _one(client: httpx.AsyncClient, journey: str, due: float, run: Run) -> None:
    try:
        if journey == "checkout":
            response = await client.post(
                "/api/checkout", json=CART, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
        elif journey == "browse":
            response = await client.get("/api/products")
        else:
            response = await client.get(f"/api/products/p{random.randint(1, 20)}")
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        headers = dict(response.headers)
    except httpx.HTTPError:
        status, body, headers = 0, {}, {}
    run.results.append(Result(journey, status, time.monotonic() - due, body, headers))


async def _drive(
    base_url: str,
    rate: Callable[[float], float],
    seconds: float,
    mix: list[tuple[int, str]],
    run: Run,
) -> None:
    journeys = [j for w, j in mix for _ in range(w)]
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0, limits=limits) as client:
        start = time.monotonic()
        due = start
        while due - start < seconds:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing: the open model's schedule
            task = asyncio.create_task(_one(client, random.choice(journeys), due, run))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += 1.0 / rate(due - start)
        if tasks:
            await asyncio.wait(tasks, timeout=15)


def drive(
    base_url: str,
    rate: float | Callable[[float], float],
    seconds: float,
    mix: list[tuple[int, str]] | None = None,
) -> Run:
    """Send requests at ``rate`` per second (or a function of elapsed seconds) for ``seconds``."""
    run = Run()
    schedule = rate if callable(rate) else (lambda _t: float(rate))
    asyncio.run(_drive(base_url, schedule, seconds, mix or [(1, "browse")], run))
    return run


def wait_for_status(
    client: lifecycle.PlatformClient, service: str, statuses: set[str], timeout_s: float = 20.0
) -> dict[str, Any]:
    """Poll the service's rollout until its status is one of ``statuses``; fail after timeout."""
    end = time.monotonic() + timeout_s
    while True:
        rollout = client.status()["services"][service]["rollout"] or {"status": "none"}
        if rollout["status"] in statuses:
            return dict(rollout)
        if time.monotonic() > end:
            pytest.fail(f"{service} rollout still {rollout['status']} after {timeout_s} s")
        time.sleep(0.1)  # poll the control API under the timeout above


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events of one kind."""
    return [e for e in events if e["kind"] == kind]
