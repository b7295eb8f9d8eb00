@config @nightly @gameday
Feature: Config change rollout
  A feature-flag change reaches the services without a restart, staged like a release: first
  one zone, watched, then everywhere. A harmful value is caught in the first zone and rolled
  back by itself; shoppers do not notice either way.

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  @quick
  Scenario: A harmless flag change rolls out with zero downtime
    When the "catalog.pricing" flag is set to "sale"
    And the target has 2 seconds to recover
    Then the "product" journey's error rate stays below 0.5%
    And the target reports that the config change was applied
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
    And no alert fires

  Scenario: A harmful flag value is caught in the first zone and rolled back
    When the "catalog.pricing" flag is set to "dynamic"
    And the target has 2 seconds to recover
    Then the "product" journey's error rate stays below 1%
    And the target reports that the config canary failed
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
    And the "ConfigCanaryFailed" alert fires within 10 seconds of the fault's start and resolves within 15 seconds of recovery
    And every alert that fired names a runbook
    And the alert is routed to "oncall"
