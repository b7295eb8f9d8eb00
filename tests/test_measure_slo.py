"""Exact statistics and SLO verdicts on records with known answers."""

from __future__ import annotations

import math

import pytest

from shakeout.measure import RequestRecord, percentile, summarize
from shakeout.slo import MIN_SAMPLES, Objective, evaluate


def _record(
    start: float, latency_ms: float, name: str = "checkout", error: bool = False
) -> RequestRecord:
    return RequestRecord(
        started_at=start,
        ended_at=start + latency_ms / 1000.0,
        name=name,
        method="POST",
        status=502 if error else 201,
        error="HTTP 502" if error else None,
    )


def test_percentile_is_nearest_rank_and_exact() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([123.456], 99) == 123.456
    assert math.isnan(percentile([], 95))


def test_summarize_selects_journey_and_window() -> None:
    records = [_record(1000.0 + i, 10.0 + i) for i in range(10)]
    records += [_record(1000.0 + i, 500.0, name="browse") for i in range(10)]
    stats = summarize(records, "checkout", start=1002.0, end=1007.0)
    assert stats.count == 5
    assert stats.p50_ms == pytest.approx(14.0)
    assert stats.max_ms == pytest.approx(16.0)
    assert stats.throughput_rps == pytest.approx(1.0)


def test_latency_objective_passes_and_fails_on_the_threshold() -> None:
    records = [_record(float(i), 100.0 if i < 95 else 400.0) for i in range(100)]
    tight = evaluate(Objective("checkout", "latency", 300.0, 95.0), records)
    assert tight.passed
    assert tight.observed == pytest.approx(100.0)
    strict = evaluate(Objective("checkout", "latency", 300.0, 99.0), records)
    assert strict.status == "fail"
    assert strict.message == (
        "SLO breached: checkout p99 latency < 300 ms over the drill: observed 400.0 ms "
        "(100 requests)"
    )


def test_error_rate_objective_names_observed_and_objective() -> None:
    records = [_record(float(i), 5.0, error=i % 10 == 0) for i in range(100)]
    verdict = evaluate(Objective("checkout", "error_rate", 0.01), records)
    assert verdict.status == "fail"
    assert verdict.observed == pytest.approx(0.10)
    assert "checkout error rate < 1%" in verdict.message
    assert "observed 10.00%" in verdict.message


def test_too_few_samples_is_inconclusive_never_a_pass() -> None:
    records = [_record(float(i), 5.0) for i in range(MIN_SAMPLES - 1)]
    verdict = evaluate(Objective("checkout", "error_rate", 0.01), records)
    assert verdict.status == "inconclusive"
    assert not verdict.passed
    assert "at least 20 requests" in verdict.message
    assert evaluate(Objective("nothing", "latency", 1.0), records).observed_text() == "no data"
