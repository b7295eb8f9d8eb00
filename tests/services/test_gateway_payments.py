"""The gateway toward payments: timeout, retries, circuit breaker and deferred payment."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from shakeout.contracts import BreakerSpec, PaymentsPolicy
from shakeout.services._upstream import CircuitBreaker

if TYPE_CHECKING:
    from conftest import HostUpstream, Shop

CART = {"items": [{"product_id": "p1", "quantity": 1}]}
RESILIENT = {
    "SHAKEOUT_PAYMENTS_TIMEOUT_MS": "100",
    "SHAKEOUT_PAYMENTS_RETRIES": "2",
    "SHAKEOUT_PAYMENTS_RETRY_BACKOFF_MS": "1",
    "SHAKEOUT_BREAKER_FAILURES": "3",
    "SHAKEOUT_BREAKER_OPEN_S": "60",
    "SHAKEOUT_PAYMENTS_DEFER": "1",
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def orders_in_store(db_path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT order_id, charge_id FROM orders").fetchall()
    finally:
        conn.close()
    return [(str(a), str(b)) for a, b in rows]


def payments_calls(upstream: HostUpstream) -> int:
    return sum(1 for host, _, _ in upstream.calls if host == "payments")


# -- the breaker and the policy -------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_half_opens_for_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_s=5.0, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success resets the count: failures must be consecutive
    breaker.failure()
    breaker.failure()
    assert (breaker.state, breaker.allow()) == ("closed", True)
    breaker.failure()
    assert (breaker.state, breaker.allow()) == ("open", False)
    clock.now += 5.0
    assert breaker.state == "half-open"
    assert breaker.allow() is True  # the one trial
    assert breaker.allow() is False  # no second call while the trial runs
    breaker.failure()  # the trial failed: open again for a full period
    assert (breaker.state, breaker.allow()) == ("open", False)
    clock.now += 5.0
    assert breaker.allow() is True
    breaker.success()
    assert (breaker.state, breaker.allow()) == ("closed", True)


def test_a_trial_that_never_reports_does_not_block_the_breaker_forever() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_s=2.0, clock=clock)
    breaker.failure()
    clock.now += 2.0
    assert breaker.allow() is True
    clock.now += 1.0
    assert breaker.allow() is False
    clock.now += 1.0
    assert breaker.allow() is True


def test_policy_from_environment() -> None:
    policy = PaymentsPolicy.from_env(RESILIENT)
    assert policy == PaymentsPolicy(
        timeout_ms=100, retries=2, retry_backoff_ms=1.0,
        breaker=BreakerSpec(failures=3, open_s=60.0), defer_on_failure=True,
    )  # fmt: skip
    default = PaymentsPolicy.from_env({})
    assert (default.timeout_ms, default.retries, default.breaker.failures) == (None, 0, 0)
    assert default.defer_on_failure is False
    assert PaymentsPolicy.from_env({"SHAKEOUT_PAYMENTS_TIMEOUT_MS": "0"}).timeout_ms is None


def test_policy_round_trips_through_the_environment() -> None:
    policy = PaymentsPolicy.from_env(RESILIENT)
    assert policy.to_env() == RESILIENT
    assert PaymentsPolicy.from_env(policy.to_env()) == policy
    assert PaymentsPolicy.from_env(PaymentsPolicy().to_env()) == PaymentsPolicy()
    odd = PaymentsPolicy(retry_backoff_ms=0.123456789, breaker=BreakerSpec(open_s=1e-7))
    assert PaymentsPolicy.from_env(odd.to_env()) == odd


@pytest.mark.parametrize(("name", "value"), [
    ("SHAKEOUT_PAYMENTS_RETRIES", "many"),
    ("SHAKEOUT_PAYMENTS_RETRIES", "9"),
    ("SHAKEOUT_PAYMENTS_TIMEOUT_MS", "-5"),
    ("SHAKEOUT_BREAKER_FAILURES", "1.5"),
    ("SHAKEOUT_PAYMENTS_DEFER", "maybe"),
    ("SHAKEOUT_PAYMENTS_TIMEOUT_MS", "2.5"),
    ("SHAKEOUT_BREAKER_OPEN_S", "0"),
])  # fmt: skip
def test_policy_errors_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        PaymentsPolicy.from_env({name: value})


# -- checkout under a failing payments --------------------------------------------------------


@pytest.fixture
def shop_env() -> dict[str, dict[str, str]]:
    """The gateway with the resilient payments policy."""
    return {"gateway": dict(RESILIENT)}


@pytest.mark.anyio
async def test_hanging_payments_times_out_and_the_order_is_kept_with_payment_pending(
    shop: Shop,
) -> None:
    # Payments would answer (successfully) after 1 s: the 3 s default timeout would wait for
    # it and the order would be paid; the policy's 100 ms timeout gives up first.
    shop.upstream.slow["payments"] = 1.0
    first = await shop.client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "payment_pending"
    assert payments_calls(shop.upstream) == 1  # a timed-out payment is not retried
    assert first.headers["X-Shakeout-Breaker"] == "payments=closed"
    again = await shop.client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "k1"})
    assert again.json()["order_id"] == first.json()["order_id"]
    assert orders_in_store(shop.db_path) == [(first.json()["order_id"], "pending")]


@pytest.mark.anyio
async def test_breaker_opens_and_checkout_stops_waiting_for_payments(shop: Shop) -> None:
    shop.upstream.hang.add("payments")
    for i in range(3):
        response = await shop.client.post(
            "/api/checkout", json=CART, headers={"Idempotency-Key": f"k{i}"}
        )
        assert response.status_code == 201
    assert response.headers["X-Shakeout-Breaker"] == "payments=open"
    calls = payments_calls(shop.upstream)
    fast = await shop.client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "k9"})
    assert fast.json()["status"] == "payment_pending"
    # The open breaker kept the call away: nothing reached payments, so nothing was waited for.
    assert payments_calls(shop.upstream) == calls
    assert len(orders_in_store(shop.db_path)) == 4


class FlakyPayments:
    """Fails the first ``failures`` payments calls with a connection error, then delegates."""

    def __init__(self, inner: HostUpstream, failures: int) -> None:
        self.inner = inner
        self.left = failures

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], json: Any = None
    ) -> tuple[int, bytes]:
        if "//payments/" in url and self.left > 0:
            self.left -= 1
            self.inner.calls.append(("payments", method, "failed"))
            raise aiohttp.ClientConnectionError("reset")
        return await self.inner.request(method, url, headers=headers, json=json)


@pytest.mark.anyio
async def test_a_failed_charge_is_retried_with_the_same_idempotency_key(shop: Shop) -> None:
    # The gateway holds the upstream it was built with; swap in the flaky one for this test.
    shop.apps["gateway"].state.upstreams.client = FlakyPayments(shop.upstream, failures=2)
    response = await shop.client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "r"})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "confirmed"
    assert payments_calls(shop.upstream) == 3  # two failures, then the charge
    [(_, charge_id)] = orders_in_store(shop.db_path)
    assert charge_id.startswith("ch_")


@pytest.mark.anyio
@pytest.mark.parametrize("shop_env", [{"gateway": {}}])
async def test_without_the_policy_a_failing_payments_fails_checkout(shop: Shop) -> None:
    shop.upstream.failures["payments"] = aiohttp.ClientConnectionError("refused")
    response = await shop.client.post("/api/checkout", json=CART, headers={"Idempotency-Key": "x"})
    assert response.status_code == 503
    assert response.json()["dependency"] == "payments"
    assert "X-Shakeout-Breaker" not in response.headers
    assert payments_calls(shop.upstream) == 1  # no retry without the policy
    assert orders_in_store(shop.db_path) == []
