@crash_loop @quick @nightly @gameday
Feature: Service crash loop
  A release whose replicas crash as soon as they start must never reach customers:
  readiness checks keep it out of traffic and the platform rolls it back by itself,
  while shoppers keep browsing and checking out.

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  Scenario: A crash-looping release of orders is kept out of traffic and rolled back
    When a release of "orders" that crashes on start takes 50% of traffic
    And the target has 3 seconds to recover
    Then the "checkout" journey's error rate stays below 1%
    And the "checkout" journey's p95 latency stays below 300 ms
    And no acknowledged order is lost or duplicated
    And every objective of the SLO file holds
    And the release of "orders" was rolled back within 15 seconds
    And the "ReplicaCrashLooping" alert fires within 15 seconds of the fault's start and resolves within 10 seconds of recovery
    And every alert that fired names a runbook
    And the alert is routed to "oncall"
