@canary @nightly @gameday @severity:critical
Feature: Canary release
  A new version first takes a small share of traffic. The platform compares it with the stable
  version, interval by interval, and decides by itself: a healthy canary is promoted, one that
  fails requests or is slow is rolled back before shoppers notice.

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  @quick
  Scenario: A healthy canary of catalog is promoted automatically
    When a canary of "catalog" takes 20% of traffic
    And the target has 2 seconds to recover
    Then the release of "catalog" was promoted within 20 seconds
    And the "browse" journey's error rate stays below 1%
    And less than 10% of the error budget is burned
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
    And no alert fires

  Scenario Outline: A canary of catalog that <regression> is rolled back automatically
    When a canary of "catalog" <change> takes 20% of traffic for 15 seconds
    And the target has 2 seconds to recover
    Then the release of "catalog" was rolled back within 10 seconds
    And the "browse" journey's error rate stays below 1%
    And the "browse" journey's p95 latency stays below 300 ms
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds

    Examples:
      | regression     | change                   |
      | fails requests | failing 50% of requests  |
      | is slow        | answering 400 ms slower  |
