@dependency @nightly @gameday @runbook:docs/runbooks.md#circuitbreakeropen
@runbook:docs/runbooks.md#serviceerrorratehigh
Feature: Dependency degradation and brownout
  Payments is the shop's external dependency. When it slows down, the gateway's timeout and
  circuit breaker keep checkout fast; when it fails a share of its calls, retries with backoff
  and deferred payment keep checkout succeeding. Either way no order is lost.

  Runbook checklist:
  - the alert named payments as the failing dependency
  - on-call saw deferred payments rather than failed checkouts
  - nobody restarted the gateway (the breaker and retries did the work)

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  Scenario: Payments slows down and the circuit breaker keeps checkout fast
    When "payments" answers 800 ms slower for 10 seconds
    And the target has 2 seconds to recover
    Then the "checkout" journey's p95 latency stays below 300 ms
    And the "checkout" journey's error rate stays below 0.5%
    And the target reports that a circuit breaker opened
    And no acknowledged order is lost or duplicated
    And every objective of the SLO file holds
    And the "CircuitBreakerOpen" alert fires within 10 seconds of the fault's start and resolves within 15 seconds of recovery
    And every alert that fired names a runbook

  @quick
  Scenario: Payments answers 20% errors and checkout degrades gracefully
    When "payments" answers 20% errors for 10 seconds
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And the "checkout" journey's p95 latency stays below 300 ms
    And no acknowledged order is lost or duplicated
    And every objective of the SLO file holds
    And the "ServiceErrorRateHigh" alert fires within 15 seconds of the fault's start and resolves within 10 seconds of recovery
    And every alert that fired names a runbook
    And the alert is routed to "oncall"
