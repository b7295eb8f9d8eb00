"""The alert steps' negative control, end to end: against the fragile target, whose alerting
is broken on purpose (targets/local-fragile.rules.yml: no runbooks; local-fragile.alertmanager
.yml: every alert routed to a receiver that drops it), the alert steps fail naming the alert.

The library's own drills assert their alerts after their SLO checks, which already fail on the
fragile target; here the alert checks come first, so they are what fails. Without Prometheus
and Alertmanager these tests skip, as the alert steps do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from shakeout.observability.prometheus import INSTALL_HINT, find_binaries
from tests.test_drills import TARGETS, _run_drill, _run_tmp_feature, _tail

pytestmark = [
    pytest.mark.drill,
    pytest.mark.skipif(find_binaries() is None, reason=INSTALL_HINT),
]

FEATURE = """\
Feature: alerting of the fragile shop
  Background:
    Given the target is up and every replica is ready
    And load of 30 requests per second from the "steady" profile
    And a baseline of 2 seconds

  Scenario: the zone alert has no runbook
    When zone "b" goes down for 4 seconds
    And the target has 2 seconds to recover
    Then the "ZoneDown" alert fires within 5 seconds of the fault's start
    And every alert that fired names a runbook

  Scenario: the zone alert reaches nobody
    When zone "b" goes down for 4 seconds
    And the target has 2 seconds to recover
    Then the "ZoneDown" alert fires within 5 seconds of the fault's start
    And the "ZoneDown" alert is routed to "oncall"
"""


def test_alert_steps_fail_on_the_fragile_alerting_naming_the_alert(
    tmp_path: Path, no_leftovers: None
) -> None:
    result = _run_tmp_feature(tmp_path, FEATURE, TARGETS / "local-fragile.yaml", timeout_s=240)
    assert result.returncode == 1, _tail(result)
    assert "2 failed" in result.stdout, _tail(result)
    breaches = [ln for ln in result.stdout.splitlines() if "SLO breached: " in ln]
    runbook = [ln for ln in breaches if "names a runbook" in ln]
    routed = [ln for ln in breaches if 'is routed to "oncall"' in ln]
    assert runbook, _tail(result)
    assert "no runbook_url on: " in runbook[0], runbook[0]
    assert "ZoneDown" in runbook[0], runbook[0]
    assert routed, _tail(result)
    assert 'the "ZoneDown" alert' in routed[0], routed[0]
    assert "no receiver got it" in routed[0], routed[0]
    # The alert itself fired: it is the runbook and the route that are missing.
    for run in (tmp_path / "reports" / "runs").iterdir():
        verdicts = json.loads((run / "verdicts.json").read_text(encoding="utf-8"))
        fired = [a for a in verdicts["alerts"] if a["alert"] == "ZoneDown"]
        assert fired, verdicts["alerts"]
        assert 0 <= fired[0]["after_fault_s"] <= 5, fired


def _variant(tmp_path: Path, scrape_s: float | None = None, **rollout: object) -> Path:
    """targets/local.yaml with its ``platform.rollout`` (and scrape interval) changed, beside
    a copy of its SLO file."""
    data = yaml.safe_load((TARGETS / "local.yaml").read_text(encoding="utf-8"))
    data["platform"]["rollout"].update(rollout)
    if scrape_s is not None:
        data["platform"]["observability"]["scrape_interval_s"] = scrape_s
        data["platform"]["observability"]["evaluation_interval_s"] = scrape_s
    folder = tmp_path / "target"
    folder.mkdir()
    shutil.copy(TARGETS / "local.slo.yaml", folder / "local.slo.yaml")
    path = folder / "local.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _events(tmp_path: Path, kind: str) -> list[dict[str, object]]:
    found = []
    for run in (tmp_path / "reports" / "runs").iterdir():
        events = json.loads((run / "platform-events.json").read_text(encoding="utf-8"))
        found += [e for e in events if e["kind"] == kind]
    return found


def test_canary_analysis_through_prometheus_queries(tmp_path: Path, no_leftovers: None) -> None:
    """The library's canaries, judged by PromQL on the replicas' metrics (as Flagger does)
    instead of the router's outcomes: the healthy one promoted, the failing one rolled back."""
    analysis = yaml.safe_load((TARGETS / "local.yaml").read_text(encoding="utf-8"))["platform"][
        "rollout"
    ]["analysis"]
    # Scraped every 0.5 s: the analysis judges 2 s windows, which need a few samples each.
    target = _variant(tmp_path, 0.5, analysis={**analysis, "metrics": "prometheus"})
    chosen = "healthy_canary or (rolled_back_automatically and fails)"
    result = _run_drill(tmp_path, target, "-k", chosen, timeout_s=300)
    assert result.returncode == 0, _tail(result)
    assert "2 passed" in result.stdout, _tail(result)
    promoted, rolled_back = (
        _events(tmp_path, "canary_promoted"),
        _events(tmp_path, "canary_rolled_back"),
    )
    assert [e["source"] for e in promoted] == ["prometheus"], promoted
    assert [e["source"] for e in rolled_back] == ["prometheus"], rolled_back
    assert "canary error rate" in str(rolled_back[0]["reason"])


ALERT_ROLLBACK = """\
Feature: a burn alert rolls a release back
  Scenario: a failing canary that no analysis watches
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 2 seconds
    When a canary of "catalog" failing 50% of requests takes 20% of traffic for 15 seconds
    And the target has 2 seconds to recover
    Then the "ServiceErrorRateHigh" alert fires within 10 seconds of the fault's start
    And the release of "catalog" was rolled back within 10 seconds
"""


@pytest.mark.parametrize("rollback_on_alerts", [["ServiceErrorRateHigh"], []])
def test_a_firing_alert_rolls_back_the_release_in_progress(
    tmp_path: Path, no_leftovers: None, rollback_on_alerts: list[str]
) -> None:
    """``rollout.rollback_on_alerts``: with canary analysis off, the catalog's error-rate alert
    is what rolls the failing canary back; without it (the negative control) the release stays
    until the fault itself ends it, 15 s later, and the drill fails."""
    target = _variant(tmp_path, analysis={"enabled": False}, rollback_on_alerts=rollback_on_alerts)
    result = _run_tmp_feature(tmp_path, ALERT_ROLLBACK, target, timeout_s=240)
    if rollback_on_alerts:
        assert result.returncode == 0, _tail(result)
        reasons = [str(e["reason"]) for e in _events(tmp_path, "rollout_rolled_back")]
        assert any(r.startswith("alert ServiceErrorRateHigh fired") for r in reasons), reasons
    else:
        assert result.returncode == 1, _tail(result)
        assert "the release of catalog is rolled back within 10 s" in result.stdout, _tail(result)
