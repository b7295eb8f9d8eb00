"""SLO files (validated, errors name file, line and field) and burn-rate alerts on known data."""

from __future__ import annotations

from pathlib import Path

import pytest

from shakeout.errors import ConfigError
from shakeout.measure import Recorder, RequestRecord
from shakeout.slo import burn_alert
from shakeout.slofile import load_slo
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0


def test_shipped_slo_file_is_valid_and_named_by_both_local_targets() -> None:
    slo = load_slo(ROOT / "targets" / "local.slo.yaml")
    assert {o.journey for o in slo.error_rate} >= {"checkout", "browse"}
    assert slo.error_budget.availability_pct == 99.0
    for name in ("local.yaml", "local-fragile.yaml"):
        assert load_target(ROOT / "targets" / name).slo == "local.slo.yaml"


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.slo.yaml"
    path.write_text(
        "latency:\n  - {journey: checkout, percentile: 97, below_ms: 300}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"bad\.slo\.yaml:2: field latency\[0\]\.percentile"):
        load_slo(path)


def _recorder(error_seconds: range, seconds: int = 40) -> Recorder:
    recorder = Recorder()
    for second in range(seconds):
        failing = second in error_seconds
        recorder.add_all(
            RequestRecord(
                T0 + second + i / 20,
                T0 + second + i / 20,
                T0 + second + i / 20 + 0.005,
                "checkout",
                "POST",
                502 if failing and i % 2 else 201,
                "HTTP 502" if failing and i % 2 else None,
            )
            for i in range(20)
        )
    return recorder


def test_fast_burn_fires_on_half_the_requests_failing() -> None:
    fired = burn_alert(_recorder(range(10, 25)), 0.01, long_s=10, short_s=2, factor=14.4)
    assert fired is not None
    t, long_burn, short_burn = fired
    assert t - T0 == pytest.approx(12, abs=1)
    assert short_burn == pytest.approx(50.0)
    assert long_burn > 14.4


def test_no_burn_without_errors() -> None:
    assert burn_alert(_recorder(range(0)), 0.01, long_s=10, short_s=2, factor=1.0) is None


def test_stop_condition_needs_a_threshold_and_takes_a_burn_rate(tmp_path: Path) -> None:
    path = tmp_path / "stop.slo.yaml"
    path.write_text("stop_condition: {window_s: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"stop\.slo\.yaml:1: field stop_condition.*burn_rate"):
        load_slo(path)
    path.write_text("stop_condition: {burn_rate: 14.4, window_s: 3}\n", encoding="utf-8")
    spec = load_slo(path).stop_condition
    assert spec is not None
    assert spec.burn_rate == 14.4
    assert spec.error_rate_pct is None
