"""Helpers for the platform-behaviour tests: a platform per target, and bounded shop traffic."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shakeout._process import wait_for
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "targets" / "local.yaml"
FRAGILE = ROOT / "targets" / "local-fragile.yaml"
CART = {"items": [{"product_id": "p1", "quantity": 2}, {"product_id": "p3", "quantity": 1}]}


@contextlib.contextmanager
def platform_up(target: Path, runtime: Path) -> Iterator[PlatformState]:
    """A platform of ``target`` in an isolated runtime folder, stopped on the way out."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHAKEOUT_RUNTIME_DIR", str(runtime))
        mp.chdir(ROOT)
        state, started = lifecycle.up(target, owner_pid=os.getpid())
        assert started
        try:
            yield state
        finally:
            lifecycle.down(state.target)


@dataclass
class Traffic:
    """Shop journeys (browse, cart, checkout) sent through the gateway from a thread.

    Bounded: at most ``rate`` requests per second, each with a 5 s timeout, until ``stop``.
    Records every status (0 for a transport error) and every acknowledged order id.
    """

    gateway_url: str
    rate: float = 15.0
    checkout_every: int = 3
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[tuple[str, int, str]] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        period = 1.0 / self.rate
        n = 0
        with httpx.Client(base_url=self.gateway_url, timeout=5.0) as web:
            while not self._stop.is_set():
                started = time.monotonic()
                n += 1
                journey = (
                    "checkout" if n % self.checkout_every == 0 else ("cart" if n % 2 else "browse")
                )
                try:
                    if journey == "browse":
                        response = web.get("/api/products")
                    elif journey == "cart":
                        response = web.post("/api/cart", json=CART)
                    else:
                        response = web.post(
                            "/api/checkout",
                            json=CART,
                            headers={"Idempotency-Key": uuid.uuid4().hex},
                        )
                    status = response.status_code
                    if journey == "checkout" and status in (200, 201):
                        self.orders.append(response.json()["order_id"])
                    detail = response.text[:200] if status >= 500 else ""
                except httpx.HTTPError as exc:
                    status, detail = 0, type(exc).__name__
                self.statuses[status] += 1
                if status == 0 or status >= 500:
                    self.failures.append((journey, status, detail))
                # Pace to the rate: sleeping is the point (open-ish model, one thread).
                self._stop.wait(max(0.0, period - (time.monotonic() - started)))

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending and wait for the thread (at most one request timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def total(self) -> int:
        """Requests answered or failed so far."""
        return sum(self.statuses.values())

    def wait_more(self, n: int, timeout_s: float = 30.0) -> None:
        """Wait until ``n`` more requests have been answered or failed: traffic before or
        after a change, counted in requests rather than slept for."""
        goal = self.total + n
        assert wait_for(lambda: self.total >= goal, timeout_s), (
            f"traffic stalled: {self.total} of {goal} requests after {timeout_s:g} s"
        )

    @property
    def errors(self) -> int:
        """5xx answers and transport errors."""
        return sum(n for s, n in self.statuses.items() if s == 0 or s >= 500)

    @property
    def error_rate(self) -> float:
        """Errors over total (0 when nothing was sent)."""
        return self.errors / self.total if self.total else 0.0


def kinds_since(client: lifecycle.PlatformClient, since: int) -> list[str]:
    """Kinds of the platform events after sequence ``since``."""
    return [e["kind"] for e in client.events(since)]


def last_seq(client: lifecycle.PlatformClient) -> int:
    """Sequence number of the latest platform event."""
    events = client.events()
    return int(events[-1]["seq"]) if events else 0
