"""ShakeOut's exception tree.

Every error the harness raises on purpose derives from ``ShakeoutError`` and carries a message
that names the file, field or value at fault::

    ShakeoutError
    ├── ConfigError            a target, topology, SLO or scenario file is invalid
    ├── PlatformError          the embedded platform cannot start, or is not running
    │   └── PlatformUnreachable  the control API does not answer
    ├── LoadError              the load generator failed to start or crashed
    ├── FaultError             a Chaos Toolkit experiment failed or could not run
    │   └── StopConditionAbort   a stop condition aborted the fault (rollbacks played)
    └── SLOBreach              an objective was not met (raised as an assertion by steps)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ShakeoutError(Exception):
    """Base class of every error ShakeOut raises on purpose."""


class ConfigError(ShakeoutError):
    """A target, topology, SLO or scenario file is invalid; the message names file and field."""


class PlatformError(ShakeoutError):
    """The embedded platform could not start, or is not in the expected state."""


class PlatformUnreachable(PlatformError):
    """The platform's control API did not answer."""


class EvictionRefused(PlatformError):
    """A disruption budget forbids an eviction for now (the API answers 429): ask again later."""


class LoadError(ShakeoutError):
    """The load generator failed to start or ended abnormally."""


class FaultError(ShakeoutError):
    """A fault (Chaos Toolkit experiment) could not run or its rollback failed."""


class StopConditionAbort(FaultError, AssertionError):
    """A stop condition fired during a fault: it was aborted and rolled back."""


class SLOBreach(ShakeoutError, AssertionError):
    """An objective was not met; the message names objective, observed and expected values."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` naming the nearest valid name, or ``""`` when none is near."""
    # difflib's ratio is the standard library's own fuzzy match; nothing better-kept is needed.
    near = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


class AlertingUnavailable(ShakeoutError):
    """The target has no alerting to read (Prometheus not installed, none named): the alert
    steps skip with this reason, never pass."""
