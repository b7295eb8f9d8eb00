@registry @nightly @gameday @runbook:docs/runbooks.md#releaserolledback
Feature: Registry outage during a release
  The image registry goes away just as a release of catalog rolls out with all of its traffic.
  The nodes cannot pull the new version, so its replicas never start. The replicas serving now
  must keep serving (the new ones start beside them, never instead of them) and the release must
  be rolled back at its progress deadline: shoppers see no errors.

  Runbook checklist:
  - the stalled release was seen as an image pull failure, not a crash
  - the release was rolled back by the platform, not by hand

  Scenario: A release meets an unreachable registry and is rolled back while the old version serves
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds
    When a release of "catalog" rolls out while the registry is unreachable for 12 seconds
    And the target has 3 seconds to recover
    Then the "browse" journey's error rate stays below 1%
    And the "checkout" journey's error rate stays below 0.5%
    And the "browse" journey's p95 latency stays below 300 ms
    And the target reports that an image pull failed
    And the release of "catalog" was rolled back within 12 seconds
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
