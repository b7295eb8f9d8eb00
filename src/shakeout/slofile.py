"""SLO files: the objectives, error budget and recovery objective that apply to a target.

A target file names its SLO file (``slo: local.slo.yaml``, relative to the target file). The
file is validated; errors name the file, line and field. Windows are compressed for drills
(seconds, not hours), as the brief says a drill against the embedded platform must be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from shakeout._yaml import load_yaml_model
from shakeout.errors import did_you_mean


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyObjective(_Model):
    """A percentile of a journey's latency kept below a bound."""

    journey: str
    percentile: Literal[50, 95, 99] = 95
    below_ms: Annotated[float, Field(gt=0)]


class ErrorRateObjective(_Model):
    """A journey's error rate kept below a bound (percent)."""

    journey: str
    below_pct: Annotated[float, Field(gt=0, le=100)]


class AvailabilityObjective(_Model):
    """A journey's share of successful requests kept at or above a bound (percent);
    ``journey: all`` judges every request of the drill."""

    journey: str = "all"
    above_pct: Annotated[float, Field(gt=0, lt=100)]


class BurnWindow(_Model):
    """A multi-window burn-rate alert: both windows burning faster than ``factor``."""

    long_s: Annotated[int, Field(ge=1, le=3600)]
    short_s: Annotated[int, Field(ge=1, le=3600)]
    factor: Annotated[float, Field(gt=0)]


class ErrorBudget(_Model):
    """Availability target and the burn-rate windows that page (compressed for drills)."""

    availability_pct: Annotated[float, Field(gt=0, lt=100)] = 99.0
    windows: list[BurnWindow] = []


class StopConditionSpec(_Model):
    """Abort a fault when, over the last ``window_s`` seconds, the error rate exceeds
    ``error_rate_pct`` or the error budget burns faster than ``burn_rate`` (or either)."""

    error_rate_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    burn_rate: Annotated[float, Field(gt=0)] | None = None
    window_s: Annotated[int, Field(ge=1, le=600)]

    @model_validator(mode="after")
    def _one_threshold(self) -> StopConditionSpec:
        if self.error_rate_pct is None and self.burn_rate is None:
            raise ValueError("give error_rate_pct, burn_rate or both")
        return self


class JourneySelector(_Model):
    """Where a journey is seen server-side: the service, method and route template of its
    requests in ``shakeout_http_requests_total`` (the selectors of its alert rules)."""

    service: Annotated[str, Field(min_length=1)]
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    route: Annotated[str, Field(pattern=r"^/")]


class Alerting(_Model):
    """The alert rules generated from the file (``shakeout rules``): how drill time maps to
    production time, where runbooks live, and each alerted journey's selectors. A journey an
    objective names but ``journeys`` does not gets no journey alerts."""

    compression: Annotated[float, Field(ge=1)] = 360
    runbook_url: str = "docs/runbooks.md#{anchor}"
    journeys: dict[str, JourneySelector] = {}

    @field_validator("runbook_url")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        try:
            value.format(anchor="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"the only placeholder allowed is {{anchor}} (the alert's name, lower-case): {exc}"
            ) from None
        return value


class SLOFile(_Model):
    """The whole SLO file."""

    latency: list[LatencyObjective] = []
    error_rate: list[ErrorRateObjective] = []
    availability: list[AvailabilityObjective] = []
    phases: list[Literal["drill", "baseline", "fault", "recovery"]] = ["drill"]
    error_budget: ErrorBudget = ErrorBudget()
    recovery_s: Annotated[float, Field(gt=0)] | None = None
    # Data objectives, judged by reconciling with the target's order store (none: not judged).
    lost_orders: Annotated[int, Field(ge=0)] | None = None
    rpo_s: Annotated[float, Field(ge=0)] | None = None
    stop_condition: StopConditionSpec | None = None
    alerting: Alerting | None = None

    @model_validator(mode="after")
    def _alerted_journeys_have_objectives(self) -> SLOFile:
        if self.alerting is None:
            return self
        named = sorted({o.journey for o in self.latency} | {o.journey for o in self.error_rate})
        problems = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_journey",
                    f"no latency or error_rate objective names journey {journey!r}: nothing to "
                    "alert on"
                    + (
                        did_you_mean(journey, named)
                        or f" (journeys with objectives: {', '.join(named) or 'none'})"
                    ),
                ),
                loc=("alerting", "journeys", journey),
                input=journey,
            )
            for journey in self.alerting.journeys
            if journey not in named
        ]
        if problems:  # raised as is, so the error names the journey's own line and field
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def thresholds(self) -> list[str]:
        """Every objective of the file with the threshold it applies, one line each, so a
        reader sees what "every objective of the SLO file holds" held the drill to."""
        phases = ", ".join(self.phases)
        lines = [
            f"{o.journey} p{o.percentile} latency < {o.below_ms:g} ms ({phases})"
            for o in self.latency
        ]
        lines += [f"{o.journey} error rate < {o.below_pct:g}% ({phases})" for o in self.error_rate]
        lines += [
            f"{o.journey} availability >= {o.above_pct:g}% ({phases})" for o in self.availability
        ]
        budget = self.error_budget
        lines += [
            f"error budget {100 - budget.availability_pct:g}%: burn < {w.factor:g}x over "
            f"{w.long_s} s and {w.short_s} s"
            for w in budget.windows
        ]
        if self.recovery_s is not None:
            lines.append(f"recovery of each error-rate journey within {self.recovery_s:g} s")
        if self.lost_orders is not None:
            lines.append(f"lost orders <= {self.lost_orders}")
        if self.rpo_s is not None:
            lines.append(f"data-loss window (RPO) <= {self.rpo_s:g} s")
        lines.append("the target back in its steady state after each fault")
        return lines


def load_slo(path: Path | str) -> SLOFile:
    """Read and validate an SLO file; errors name the file, line and field."""
    return load_yaml_model(path, SLOFile, "SLO file")
