@config @nightly @gameday
Feature: Config change rollout
  A feature-flag change reaches the services without a restart, staged like a release: first
  one zone, watched, then everywhere. A harmful value is caught in the first zone and rolled
  back by itself; shoppers do not notice either way.

  @quick
  Scenario: A harmless flag change rolls out with zero downtime
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds
    When the "catalog.pricing" flag is set to "sale"
    And the target has 2 seconds to recover
    Then the "product" journey's error rate stays below 0.5%
    And the target reported a "config_applied" event
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds

  Scenario: A harmful flag value is caught in the first zone and rolled back
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds
    When the "catalog.pricing" flag is set to "dynamic"
    And the target has 2 seconds to recover
    Then the "product" journey's error rate stays below 1%
    And the target reported a "config_canary_failed" event
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
