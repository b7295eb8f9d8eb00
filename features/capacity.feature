@capacity @nightly
Feature: Node pool exhaustion and replica loss
  Capacity is removed: replicas lose their node and are not rescheduled for a while, or are
  killed and restarted. The remaining replicas and the autoscaler must carry the load without
  errors, and no order is lost.

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  Scenario: Two gateway replicas lose their node and the rest carry the load
    When 2 replicas of "gateway" lose their node for 10 seconds
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And the "browse" journey's error rate stays below 1%
    And the target reports that capacity was removed
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds

  Scenario: Two orders replicas are killed and replaced while checkout carries on
    When 2 replicas of "orders" are killed
    And the target has 4 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And no acknowledged order is lost or duplicated
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
