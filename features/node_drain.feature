@drain @nightly @gameday @runbook:docs/runbooks.md#node-drain
Feature: Node drain with disruption budgets
  A rolling node upgrade drains every node in turn: each is cordoned, its replicas are evicted
  and replaced elsewhere, and it comes back before the next one goes. Disruption budgets make
  the drain wait while a service's replacement is not ready yet, so no service ever loses more
  than one replica's worth of capacity: shoppers see no errors and no order is lost.

  Runbook checklist:
  - the drain waited on the budgets instead of failing or forcing evictions
  - every node was uncordoned at the end

  Scenario: Every node is drained in turn and the budgets keep every service serving
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds
    When every node is drained in turn, waiting at most 30 seconds per node
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And the "browse" journey's error rate stays below 1%
    And the "checkout" journey's p95 latency stays below 300 ms
    And no acknowledged order is lost or duplicated
    And the target reports that a disruption budget held an eviction back
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
