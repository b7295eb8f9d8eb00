@scale @nightly @gameday
Feature: Scale event
  Traffic doubles for a while, or grows by half and stays there. Each gateway replica has a
  fixed capacity, so the autoscaler must add replicas in time: shoppers see no errors and
  latency stays within its objective.

  Scenario Outline: A <change> of traffic is absorbed by the autoscaler
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "<profile>" profile
    When the load runs for 24 seconds
    Then the "checkout" journey's error rate stays below 0.5%
    And the "browse" journey's error rate stays below 1%
    And the "browse" journey's p95 latency stays below 300 ms
    And the target reports that the autoscaler added replicas
    And every objective of the SLO file holds

    Examples:
      | change     | profile |
      | 2x spike   | spike   |
      | 50% surge  | surge   |
