@secrets @nightly @gameday @severity:critical
Feature: Secrets rotation and secret-store outage
  The services' shared internal key is rotated under load: no request fails for it, every
  service picks up the new key, the old one is refused once the overlap ends, and the rotation
  is in the audit log. When the secret store itself goes away, the services keep serving with
  the credentials they cached.

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    And a baseline of 3 seconds

  @quick
  Scenario: The shared key is rotated under load with zero downtime
    When the shared key is rotated
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And the "browse" journey's error rate stays below 0.5%
    And the fault's own steady-state checks held
    And the target reports that the shared key was rotated
    And every objective of the SLO file holds

  Scenario: The secret store goes away and the services keep serving from their cache
    When the secret store is unreachable for 8 seconds
    And the target has 2 seconds to recover
    Then the "checkout" journey's error rate stays below 0.5%
    And during the fault the "browse" journey's error rate stays below 1%
    And the target is back in its steady state after the fault
    And every objective of the SLO file holds
