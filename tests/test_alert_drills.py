"""The alert steps' negative control, end to end: against the fragile target, whose alerting
is broken on purpose (targets/local-fragile.rules.yml: no runbooks; local-fragile.alertmanager
.yml: every alert routed to a receiver that drops it), the alert steps fail naming the alert.

The library's own drills assert their alerts after their SLO checks, which already fail on the
fragile target; here the alert checks come first, so they are what fails. Without Prometheus
and Alertmanager these tests skip, as the alert steps do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shakeout.observability.prometheus import INSTALL_HINT, find_binaries
from tests.test_drills import TARGETS, _run_tmp_feature, _tail

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
