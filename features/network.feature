@network @nightly @gameday @runbook:docs/runbooks.md#zonedown
Feature: Network packet loss
  A zone's network drops a share of its packets, both ways, in the kernel: callers of the zone's
  replicas see lost segments, retransmissions and slow connects, and nothing tells the router.
  Per-try timeouts, retries in another zone, probes and ejection must keep checkout within its
  objectives.

  Runbook checklist:
  - the zone's replicas were taken out of traffic by their probes and ejection, not by hand
  - nobody restarted a replica: they were healthy, their network was not

  Scenario: Zone b loses 30% of its packets and retries in the other zones keep checkout fast
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds
    When zone "b" loses 30% of its packets for 10 seconds
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And the "checkout" journey's p95 latency stays below 300 ms
    And the "browse" journey's error rate stays below 1%
    And no acknowledged order is lost or duplicated
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
