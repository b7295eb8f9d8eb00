"""Prometheus alert rules generated from an SLO file, and the Alertmanager config routing them.

``shakeout rules`` writes the rule file; the embedded platform loads the same file into its own
Prometheus. Two groups: ``shakeout-slo`` (symptoms: per journey, a multi-window multi-burn-rate
alert per ``error_budget.windows`` entry and a latency alert per objective, as in the SRE
workbook) and ``shakeout-platform`` (causes, from the platform daemon's metrics). Drill windows
are seconds; ``scale`` (the SLO file's ``alerting.compression``) multiplies them back to
production time for a team's own Prometheus. docs/observability.md has the whole picture.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from shakeout.slofile import (
    Alerting,
    BurnWindow,
    ErrorRateObjective,
    JourneySelector,
    LatencyObjective,
    SLOFile,
)

DEFAULT_RUNBOOK_URL = "docs/runbooks.md#{anchor}"
REQUESTS = "shakeout_http_requests_total"
DURATION = "shakeout_http_request_duration_seconds"
SERVER_ERROR = 'status=~"5.."'
# rate() needs two samples in its range; four scrape intervals leave room for a late scrape.
MIN_SCRAPES = 4
SLO_PERIOD_S = 30 * 86400  # the production budget period a burn factor is read against
# The platform's cause alerts; the drills' steps name them.
PLATFORM_ALERTS = (
    "ZoneDown",
    "ReplicaCrashLooping",
    "ServiceErrorRateHigh",
    "CircuitBreakerOpen",
    "ConfigCanaryFailed",
    "ReleaseRolledBack",
)
# Alertmanager groups by the alert's name and every label that says what it is about.
_IDENTIFYING = ("journey", "objective", "window", "service", "version", "zone", "dependency")
GROUP_BY = ("alertname", *_IDENTIFYING)
SERVICE_ERROR_RATIO = 0.05
SERVICE_MIN_RPS = 2.0  # below this a handful of errors is noise, not an outage

Rule = dict[str, Any]


def duration(seconds: float) -> str:
    """A Prometheus duration: ``1h``, ``12m``, ``1h30m``, ``2s``, ``500ms``."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"a duration must be positive, not {seconds!r} s")
    out = ""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            out += f"{count}{unit}"
    return out


def _window(seconds: float, scrape_interval_s: float) -> tuple[float, bool]:
    """``seconds`` raised to ``MIN_SCRAPES`` scrape intervals, and whether it was."""
    floor = MIN_SCRAPES * scrape_interval_s
    return (floor, True) if seconds < floor else (seconds, False)


def alert_name(journey: str, suffix: str) -> str:
    """``checkout``, ``ErrorBudgetBurn`` -> ``CheckoutErrorBudgetBurn``."""
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", journey))
    if not camel or camel[0].isdigit():
        camel = "Journey" + camel  # an alert name is a metric name: no leading digit
    return camel + suffix


def runbook(template: str, name: str) -> str:
    """The runbook URL of an alert: ``template`` with ``{anchor}`` its lower-case name."""
    return template.format(anchor=name.lower())


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(where: JourneySelector, *extra: str) -> str:
    matchers = [
        f"service={_quote(where.service)}",
        f"method={_quote(where.method)}",
        f"route={_quote(where.route)}",
        *extra,
    ]
    return "{" + ", ".join(matchers) + "}"


def _number(value: float) -> str:
    return f"{value:.6g}"


class _SLORules:
    """The recording and alerting rules of one SLO file, built journey by journey."""

    def __init__(
        self, alerting: Alerting, *, scrape_interval_s: float, scale: float, runbook_url: str
    ) -> None:
        self.alerting = alerting
        self.scrape_interval_s = scrape_interval_s
        self.scale = scale
        self.runbook_url = runbook_url
        self.records: list[Rule] = []
        self.alerts: list[Rule] = []
        self._recorded: set[tuple[str, str]] = set()

    def window(self, drill_s: float) -> tuple[str, str]:
        """A drill window scaled and raised: the Prometheus duration, and a note if raised."""
        seconds, raised = _window(drill_s * self.scale, self.scrape_interval_s)
        note = (
            f"{duration(drill_s * self.scale)} raised to {MIN_SCRAPES} scrape intervals "
            f"({duration(self.scrape_interval_s)}): rate() needs two samples"
        )
        return duration(seconds), note if raised else ""

    def compression(self, drill_s: list[float]) -> str:
        """``10s/2s here = 1h/12m in production at 360x`` (the other way round in production)."""
        factor = self.alerting.compression
        here = "/".join(self.window(s)[0] for s in drill_s)
        if self.scale == 1:
            there = "/".join(duration(s * factor) for s in drill_s) + " in production"
        else:
            there = "/".join(duration(s) for s in drill_s) + " in drills"
        notes = [note for _, note in map(self.window, drill_s) if note]
        return "; ".join([f"{here} here = {there} at {factor:g}x", *notes])

    def record(self, name: str, expr: str, journey: str, service: str) -> str:
        """Record ``expr`` as ``name`` for ``journey`` (once); the selector of the result."""
        if (name, journey) not in self._recorded:
            self._recorded.add((name, journey))
            labels = {"journey": journey, "service": service}
            self.records.append({"record": name, "expr": expr, "labels": labels})
        return f"{name}{{journey={_quote(journey)}}}"

    def error_ratio(self, journey: str, where: JourneySelector, window: str) -> str:
        """The recorded 5xx ratio of a journey over ``window``."""
        errors = f"rate({REQUESTS}{selector(where, SERVER_ERROR)}[{window}])"
        total = f"rate({REQUESTS}{selector(where)}[{window}])"
        return self.record(
            f"journey:shakeout_http_errors:ratio_rate{window}",
            f"sum by (service) ({errors})\n/\nsum by (service) ({total})",
            journey,
            where.service,
        )

    def burn_alerts(
        self, journey: str, where: JourneySelector, objective: ErrorRateObjective, slo: SLOFile
    ) -> None:
        """One multi-window burn alert per ``error_budget.windows`` entry, fastest first."""
        name = alert_name(journey, "ErrorBudgetBurn")
        pct = objective.below_pct
        for index, spec in enumerate(_fastest_first(slo)):
            long, short = self.window(spec.long_s)[0], self.window(spec.short_s)[0]
            threshold = _number(spec.factor * pct / 100)
            self.alerts.append(
                {
                    "alert": name,
                    "expr": (
                        f"{self.error_ratio(journey, where, long)} > {threshold}\nand\n"
                        f"{self.error_ratio(journey, where, short)} > {threshold}"
                    ),
                    "for": "0s",
                    "labels": {
                        "journey": journey,
                        "service": where.service,
                        "objective": f"error rate < {pct:g}%",
                        "severity": "page" if index == 0 else "ticket",
                        "window": f"{long}/{short}",
                    },
                    "annotations": {
                        "summary": (
                            f"{_what(journey, where)} is burning its {pct:g}% error budget "
                            f"{spec.factor:g}x too fast over {long} and {short}"
                        ),
                        "description": (
                            f"More than {spec.factor * pct:.4g}% of {where.method} {where.route} "
                            f"requests to {where.service} answered 5xx over both the last "
                            f"{long} and the last {short} (objective: error rate < {pct:g}%). "
                            f"At {spec.factor:g}x a 30-day error budget lasts "
                            f"{SLO_PERIOD_S / 86400 / spec.factor:.3g} days. "
                            f"Error ratio over {long}: "
                            "{{ $value | humanizePercentage }}."
                        ),
                        "runbook_url": runbook(self.runbook_url, name),
                        "compression": self.compression([spec.long_s, spec.short_s]),
                    },
                }
            )

    def latency_alert(
        self, journey: str, where: JourneySelector, objective: LatencyObjective, slo: SLOFile
    ) -> None:
        """The percentile over the fastest burn window's short window above its bound."""
        name = alert_name(journey, "LatencyHigh")
        drill_s = min((w.short_s for w in _fastest_first(slo)[:1]), default=5)
        window = self.window(drill_s)[0]
        p = objective.percentile
        buckets = f"rate({DURATION}_bucket{selector(where)}[{window}])"
        series = self.record(
            f"journey:{DURATION}:p{p}_rate{window}",
            f"histogram_quantile({_number(p / 100)}, sum by (service, le) ({buckets}))",
            journey,
            where.service,
        )
        self.alerts.append(
            {
                "alert": name,
                "expr": f"{series} > {_number(objective.below_ms / 1000)}",
                "for": duration(self.scrape_interval_s),
                "labels": {
                    "journey": journey,
                    "service": where.service,
                    "objective": f"p{p} latency < {objective.below_ms:g} ms",
                    "severity": "page",
                    "window": window,
                },
                "annotations": {
                    "summary": (
                        f"{_what(journey, where)} p{p} latency is above its "
                        f"{objective.below_ms:g} ms objective over {window}"
                    ),
                    "description": (
                        f"The p{p} latency of {where.method} {where.route} on {where.service}, "
                        f"from the server-side histogram over the last {window}, is "
                        "{{ $value | humanizeDuration }} "
                        f"(objective: p{p} < {objective.below_ms:g} ms)."
                    ),
                    "runbook_url": runbook(self.runbook_url, name),
                    "compression": self.compression([drill_s]),
                },
            }
        )


def _fastest_first(slo: SLOFile) -> list[BurnWindow]:
    return sorted(slo.error_budget.windows, key=lambda w: (w.long_s, w.short_s, -w.factor))


def _what(journey: str, where: JourneySelector) -> str:
    return f"{journey} ({where.service} {where.method} {where.route})"


def slo_rules(
    slo: SLOFile,
    *,
    scrape_interval_s: float,
    scale: float = 1.0,
    runbook_url: str | None = None,
) -> list[Rule]:
    """Recording and alerting rules of every journey in ``slo.alerting.journeys``.

    Per error-rate objective, one burn alert per ``error_budget.windows`` entry (severity
    ``page`` for the fastest, ``ticket`` for the others); per latency objective, one alert on
    the percentile over the fastest window's short window. ``scale`` multiplies every window
    (``alerting.compression`` for production rules); a window shorter than ``MIN_SCRAPES``
    scrape intervals is raised to that, and the alert's annotations say so.
    """
    if slo.alerting is None:
        return []
    rules = _SLORules(
        slo.alerting,
        scrape_interval_s=scrape_interval_s,
        scale=scale,
        runbook_url=runbook_url or slo.alerting.runbook_url,
    )
    for journey, where in slo.alerting.journeys.items():
        for error_rate in slo.error_rate:
            if error_rate.journey == journey:
                rules.burn_alerts(journey, where, error_rate, slo)
        for latency in slo.latency:
            if latency.journey == journey:
                rules.latency_alert(journey, where, latency, slo)
    return rules.records + rules.alerts


def platform_rules(*, runbook_url: str, scrape_interval_s: float = 1.0) -> list[Rule]:
    """The cause alerts on the platform daemon's metrics (``PLATFORM_ALERTS``); a window
    shorter than ``MIN_SCRAPES`` scrape intervals is raised to that."""
    short = duration(_window(5, scrape_interval_s)[0])
    recent = duration(_window(10, scrape_interval_s)[0])
    errors = f"sum by (service) (rate({REQUESTS}{{{SERVER_ERROR}}}[{short}]))"
    total = f"sum by (service) (rate({REQUESTS}[{short}]))"

    def alert(name: str, expr: str, severity: str, summary: str, description: str) -> Rule:
        return {
            "alert": name,
            "expr": expr,
            "for": "0s",
            "labels": {"severity": severity},
            "annotations": {
                "summary": summary,
                "description": description,
                "runbook_url": runbook(runbook_url, name),
            },
        }

    return [
        alert(
            "ZoneDown",
            "max by (zone) (shakeout_zone_ready) == 0",
            "page",
            "zone {{ $labels.zone }} is down",
            "The node controller marks zone {{ $labels.zone }} not ready: its node stopped "
            "heartbeating. Its replicas get no traffic and nothing new is placed there; the "
            "other zones must carry the load.",
        ),
        alert(
            "ReplicaCrashLooping",
            "sum by (service, version) (shakeout_replicas_crashlooping) > 0",
            "page",
            "{{ $labels.service }} {{ $labels.version }}: {{ $value }} replica(s) crash-looping",
            "{{ $value }} replica(s) of {{ $labels.service }} version {{ $labels.version }} "
            "exit soon after they start and wait in restart back-off (CrashLoopBackOff).",
        ),
        alert(
            "ServiceErrorRateHigh",
            f"(\n  {errors}\n  /\n  {total}\n) > {_number(SERVICE_ERROR_RATIO)}\n"
            f"and\n{total} >= {_number(SERVICE_MIN_RPS)}",
            "page",
            "{{ $labels.service }} answers {{ $value | humanizePercentage }} of its requests "
            f"with 5xx over {short}",
            f"More than {SERVICE_ERROR_RATIO:.0%} of the requests {{{{ $labels.service }}}}'s "
            f"replicas served over the last {short} answered 5xx (server side, every route; "
            f"only at {SERVICE_MIN_RPS:g} requests/s or more, so a few errors among few "
            "requests do not page).",
        ),
        alert(
            "CircuitBreakerOpen",
            "max by (dependency) (shakeout_breaker_open) > 0",
            "ticket",
            "circuit breaker to {{ $labels.dependency }} open on {{ $value }} replica(s)",
            "{{ $value }} replica(s) stopped calling {{ $labels.dependency }} after repeated "
            "failures or timeouts and answer from their fallback until a probe call succeeds.",
        ),
        alert(
            "ConfigCanaryFailed",
            f"sum(increase(shakeout_config_canary_failures_total[{recent}])) > 0",
            "ticket",
            "a config change failed its canary",
            f"A config or feature-flag change failed on its canary replicas within the last "
            f"{recent} and was held back (or rolled back) before reaching every replica.",
        ),
        alert(
            "ReleaseRolledBack",
            f"sum by (service) (increase(shakeout_rollbacks_total[{recent}])) > 0",
            "ticket",
            "{{ $labels.service }}: a release was rolled back",
            f"The rollout controller rolled a release of {{{{ $labels.service }}}} back within "
            f"the last {recent} (canary analysis or health regression); the previous version "
            "serves again.",
        ),
    ]


def rule_file(
    slo: SLOFile | None,
    *,
    scrape_interval_s: float,
    runbook_url: str = DEFAULT_RUNBOOK_URL,
    production: bool = False,
) -> dict[str, Any]:
    """The whole Prometheus rule file: ``shakeout-slo`` (when ``slo`` is given) and
    ``shakeout-platform``. ``production`` multiplies the SLO windows by the file's
    ``alerting.compression``."""
    groups: list[dict[str, Any]] = []
    if slo is not None:
        scale = slo.alerting.compression if production and slo.alerting else 1.0
        rules = slo_rules(
            slo, scrape_interval_s=scrape_interval_s, scale=scale, runbook_url=runbook_url
        )
        groups.append({"name": "shakeout-slo", "rules": rules})
    groups.append(
        {
            "name": "shakeout-platform",
            "rules": platform_rules(runbook_url=runbook_url, scrape_interval_s=scrape_interval_s),
        }
    )
    return {"groups": groups}


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line strings (the expressions), so the file reads like a
    hand-written one."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(document: dict[str, Any], header: str = "") -> str:
    """``document`` as YAML (keys in order, expressions as block scalars), after ``header``
    (comment lines)."""
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)
    return header + text


def dump_rules(document: dict[str, Any]) -> str:
    """A rule file as YAML, with a comment saying where it came from."""
    return dump_yaml(document, "# Generated by `shakeout rules` (docs/observability.md).\n")


def write_rules(path: Path, document: dict[str, Any]) -> None:
    """Write a rule file (``dump_rules``) to ``path``."""
    path.write_text(dump_rules(document), encoding="utf-8")


def alertmanager_config(
    receivers: dict[str, str], *, default: str, credentials_file: str | None
) -> dict[str, Any]:
    """An Alertmanager config routing every alert to ``default``: one webhook receiver per
    entry of ``receivers`` (name -> URL), resolved alerts sent too, bearer credentials read
    from ``credentials_file`` when given. Timings suit drills: a new group is sent at once,
    changes within a second."""
    if default not in receivers:
        raise ValueError(f"default receiver {default!r} is not one of {sorted(receivers)}")
    configs = []
    for name, url in receivers.items():
        webhook: dict[str, Any] = {"url": url, "send_resolved": True}
        if credentials_file is not None:
            webhook["http_config"] = {"authorization": {"credentials_file": credentials_file}}
        configs.append({"name": name, "webhook_configs": [webhook]})
    return {
        "route": {
            "receiver": default,
            "group_by": list(GROUP_BY),
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": configs,
    }
