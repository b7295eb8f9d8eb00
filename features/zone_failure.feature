@zone @nightly @gameday @runbook:docs/runbooks.md#zonedown
Feature: Availability-zone failure
  When a whole zone goes down, or freezes and stops answering, traffic must fail over to the
  healthy zones: shoppers keep checking out, the shop is back within its recovery time
  objective (RTO) and no acknowledged order is lost (RPO zero on the embedded platform).

  Runbook checklist:
  - the ZoneDown alert paged on-call with the zone named
  - on-call found the zone's replicas out of the endpoints from the status page
  - traffic was confirmed on the healthy zones before anyone touched the failed zone
  - the zone came back without a manual step

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  Scenario Outline: Zone b <failure> and traffic fails over
    When zone "b" <failure> for 6 seconds
    And the target has 3 seconds to recover
    Then the "checkout" journey's error rate stays below 1%
    And during the fault the "browse" journey's error rate stays below 1%
    And the "checkout" journey recovers within 5 seconds of the fault's start
    And the "checkout" journey's p95 latency stays below 300 ms
    And no acknowledged order is lost or duplicated
    And the data-loss window (RPO) is at most 0 seconds
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
    And the "ZoneDown" alert fires within 5 seconds of the fault's start and resolves within 10 seconds of recovery
    And every alert that fired names a runbook
    And the alert is routed to "oncall"

    @quick
    Examples: the zone goes down
      | failure    |
      | goes down  |

    Examples: the zone freezes
      | failure    |
      | freezes    |
