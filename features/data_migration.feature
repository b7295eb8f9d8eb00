@data @nightly @gameday
Feature: Data migration event
  The orders store's schema is changed online, under load: expand, dual write, backfill,
  switch reads, contract. Every acknowledged order survives, exactly once, and checkout never
  stops.

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  Scenario: The orders store is migrated online with no lost or duplicated order
    When the orders store is migrated online
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And no acknowledged order is lost or duplicated
    And the data-loss window (RPO) is at most 0 seconds
    And the target reports that the schema migration completed
    And every objective of the SLO file holds
