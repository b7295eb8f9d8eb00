"""Payments slow or failing: the resilient platform absorbs it, the fragile one does not.

Real HTTP through the router to the gateway (checkout only, 15 per second for 5 s) while
payments is replaced by a degraded version, on ``targets/local.yaml`` (timeout, retries,
breaker, deferred payment) and ``targets/local-fragile.yaml`` (none of them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import platform_up
from shop_load import Run, drive, kinds, wait_for_status

from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = [(1, "checkout")]


@pytest.fixture(scope="module")
def resilient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """``targets/local.yaml`` up."""
    with platform_up(
        ROOT / "targets" / "local.yaml", tmp_path_factory.getbasetemp() / "runtime"
    ) as state:
        yield state


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """``targets/local-fragile.yaml`` up."""
    path = ROOT / "targets" / "local-fragile.yaml"
    with platform_up(path, tmp_path_factory.getbasetemp() / "runtime") as state:
        yield state


def _degraded(state: PlatformState, env: dict[str, str]) -> tuple[Run, list[dict[str, Any]]]:
    """Checkout load while payments runs with ``env``; the run and the platform's events."""
    with lifecycle.PlatformClient(state) as client:
        since = client.events()[-1]["seq"]
        client.deploy("payments", "degraded", 1.0, env)
        try:
            wait_for_status(client, "payments", {"available"})
            run = drive(state.gateway_url, 15, 5.0, CHECKOUT)
        finally:
            client.rollback("payments")
        return run, client.events(since)


def test_slow_payments_resilient_checkout_stays_fast_with_payment_deferred(
    resilient: PlatformState,
) -> None:
    run, events = _degraded(resilient, {"SHAKEOUT_EXTRA_LATENCY_MS": "800"})
    assert len(run.results) >= 70
    assert run.error_rate() == 0.0
    assert run.p95_ms() < 300, run.p95_ms()
    statuses = {r.body.get("status") for r in run.results}
    assert "payment_pending" in statuses
    opened = kinds(events, "breaker_opened")
    assert opened
    assert {e["dependency"] for e in opened} == {"payments"}


def test_slow_payments_fragile_checkout_waits(fragile: PlatformState) -> None:
    run, events = _degraded(fragile, {"SHAKEOUT_EXTRA_LATENCY_MS": "800"})
    assert run.p95_ms() > 700, run.p95_ms()
    assert {r.body.get("status") for r in run.results} == {"confirmed"}
    assert not kinds(events, "breaker_opened")


def test_failing_payments_resilient_checkout_succeeds(resilient: PlatformState) -> None:
    run, _ = _degraded(resilient, {"SHAKEOUT_ERROR_RATE": "0.2"})
    assert len(run.results) >= 70
    assert run.error_rate() < 0.005, [r.status for r in run.results if r.status >= 500]
    assert run.p95_ms() < 300


def test_failing_payments_fragile_checkout_fails(fragile: PlatformState) -> None:
    run, _ = _degraded(fragile, {"SHAKEOUT_ERROR_RATE": "0.2"})
    assert run.error_rate() > 0.05, run.error_rate()
