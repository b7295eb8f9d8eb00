"""HTML evidence for a drill: the SLO verdict table, the load summary, the platform's events.

Rendered with Jinja2 (autoescaped: objective texts and messages come from feature files).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from shakeout.report.runs import RunFolder, VerdictRow
from shakeout.report.scorecard import Comparison

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

_STYLE = """
body { font-family: sans-serif; font-size: 13px; margin: 8px; }
table { border-collapse: collapse; margin-bottom: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { background: #e3f5e1; } .fail { background: #fbe0de; } .inconclusive { background: #fff4cc; }
.outcome { font-size: 15px; font-weight: bold; }
.regression { color: #b00020; font-weight: bold; }
"""

_VERDICTS = _ENV.from_string(
    """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>SLO verdicts: {{ run.drill }}</title>
<style>{{ style }}</style></head><body>
<p class="outcome {{ outcome_class }}">Outcome: {{ outcome }}</p>
{% if error %}<pre>{{ error }}</pre>{% endif %}
<p>Target <b>{{ run.target }}</b>{% if load_spec %}; load {{ load_spec }}{% endif %}.
{% if recovery %} Recovery ({{ recovery.journey or "all journeys" }}):
{{ fmt(recovery.from_fault_start_s, "s") }} after the fault's start,
{{ fmt(recovery.from_fault_end_s, "s") }} after its end{% if recovery.first_impact_s is not none %}
(first impact {{ fmt(recovery.first_impact_s, "s") }} after the fault's start, impact window
{{ fmt(recovery.impact_window_s, "s") }}){% endif %}.{% endif %}
{% if budget is not none %} Error budget burned: {{ fmt(budget, "%") }}.{% endif %}</p>
{% if comparison %}
<p>Compared with the previous run ({{ comparison.previous_stamp }}):
{% for line in comparison.lines %}<br>{{ line }}{% endfor %}
{% for line in comparison.regressions %}
<br><span class="regression">REGRESSION: {{ line }}</span>
{% endfor %}
</p>
{% endif %}
<table>
<tr><th>status</th><th>kind</th><th>objective</th><th>phase</th><th>observed</th>
<th>threshold</th><th>samples</th><th>message</th></tr>
{% for row in rows %}
<tr class="{{ row.status }}"><td>{{ row.status }}</td><td>{{ row.kind }}</td>
<td>{{ row.objective }}</td><td>{{ row.phase }}</td>
<td class="num">{{ fmt(row.observed, row.unit) }}</td>
<td class="num">{{ fmt(row.threshold, row.unit) }}</td>
<td class="num">{{ row.samples if row.samples is not none else "" }}</td>
<td>{{ row.message }}</td></tr>
{% else %}
<tr><td colspan="8">no objective was judged (the drill ended before its Then steps)</td></tr>
{% endfor %}
</table>
{% if alerts %}
<table><tr><th>alert that fired</th><th>labels</th><th>after the fault's start</th>
<th>firing for</th></tr>
{% for a in alerts %}
<tr><td>{{ a.alert }}</td><td>{{ a.labels }}</td>
<td class="num">{{ fmt(a.after_fault_s, "s") }}</td>
<td class="num">{{ fmt(a.end - a.start, "s") if a.end is not none else "still firing" }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if server_side %}
<table><tr><th>journey</th><th>server side</th><th>load: requests</th><th>errors</th><th>p95</th>
<th>servers: requests</th><th>errors</th><th>p95</th><th>disagreement</th></tr>
{% for s in server_side %}
<tr class="{{ 'fail' if s.flag else 'pass' }}"><td>{{ s.journey }}</td><td>{{ s.where }}</td>
<td class="num">{{ s.load_requests }}</td><td class="num">{{ fmt(s.load_error_pct, "%") }}</td>
<td class="num">{{ fmt(s.load_p95_ms, "ms") }}</td>
<td class="num">{{ fmt(s.server_requests, "") }}</td>
<td class="num">{{ fmt(s.server_error_pct, "%") }}</td>
<td class="num">{{ fmt(s.server_p95_ms, "ms") }}</td><td>{{ s.flag }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if findings %}
<p>Findings:</p><ul>{% for f in findings %}<li>{{ f }}</li>{% endfor %}</ul>
{% endif %}
{% if faults %}
<table><tr><th>experiment</th><th>status</th><th>fault window</th><th>rollbacks</th>
<th>abort reason</th></tr>
{% for f in faults %}
<tr><td>{{ f.experiment }}</td><td>{{ f.status }}</td><td>{{ f.window }}</td>
<td>{{ f.rollbacks }}</td><td>{{ f.abort_reason or "" }}</td></tr>
{% endfor %}</table>
{% endif %}
</body></html>
"""
)

_LOAD = _ENV.from_string(
    """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Load summary</title><style>{{ style }}</style>
</head><body>
<p>{{ load_spec or "load spec not recorded" }}</p>
{% for w in warnings %}<p class="regression">warning: {{ w }}</p>{% endfor %}
<table><tr><th>journey</th><th>requests</th><th>errors</th><th>dropped</th><th>error rate</th>
<th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>
{% for name, s in load %}
<tr><td>{{ name }}</td><td class="num">{{ s.requests }}</td><td class="num">{{ s.errors }}</td>
<td class="num">{{ s.dropped }}</td><td class="num">{{ pct(s.error_rate) }}</td>
<td class="num">{{ num(s.throughput_rps) }}</td><td class="num">{{ num(s.p50_ms) }}</td>
<td class="num">{{ num(s.p95_ms) }}</td><td class="num">{{ num(s.p99_ms) }}</td>
<td class="num">{{ num(s.max_ms) }}</td></tr>
{% endfor %}</table></body></html>
"""
)


def fmt(value: float | None, unit: str | None) -> str:
    """A measured value with its unit, as the tables print it ("" when absent)."""
    if value is None:
        return ""
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if unit in (None, "", "x"):
        return f"{text}{unit or ''}"
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _num(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else ""


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, int | float) else ""


def _fault_rows(run: RunFolder) -> list[dict[str, Any]]:
    rows = []
    for fault in run.summary.get("faults") or []:
        start, end = fault.get("fault_start"), fault.get("fault_end")
        window = f"{end - start:.1f} s" if start is not None and end is not None else "not applied"
        ok = fault.get("rollbacks_ok")
        rows.append(
            {
                "experiment": fault.get("experiment", "?"),
                "status": fault.get("status", "?"),
                "window": window,
                "rollbacks": "ok" if ok else ("FAILED" if ok is False else "none"),
                "abort_reason": fault.get("abort_reason"),
            }
        )
    return rows


def _order(row: VerdictRow) -> int:
    # Failures first: the reviewer reads the first lines.
    return {"fail": 0, "inconclusive": 1, "pass": 2}[row.status]


def verdict_table(run: RunFolder, comparison: Comparison | None = None) -> str:
    """The SLO verdict table of a drill as a standalone HTML page."""
    outcome = run.outcome or "unknown (no verdicts.json)"
    return _VERDICTS.render(
        style=_STYLE,
        run=run,
        outcome=outcome,
        error=run.verdicts.error if run.verdicts else None,
        outcome_class={"pass": "pass", "fail": "fail"}.get(outcome, "inconclusive"),
        load_spec=run.summary.get("load_spec"),
        recovery=run.verdicts.recovery if run.verdicts else None,
        budget=run.verdicts.budget_burned_pct if run.verdicts else None,
        rows=sorted(run.rows, key=_order),
        findings=run.summary.get("findings") or [],
        faults=_fault_rows(run),
        alerts=run.verdicts.alerts if run.verdicts else [],
        server_side=run.verdicts.server_side if run.verdicts else [],
        comparison=comparison,
        fmt=fmt,
    )


def load_table(run: RunFolder) -> str:
    """The load statistics per journey (the summary's ``load``) as an HTML page."""
    load = run.summary.get("load") or {}
    return _LOAD.render(
        style=_STYLE,
        load_spec=run.summary.get("load_spec"),
        warnings=run.summary.get("load_warnings") or [],
        load=sorted(load.items(), key=lambda kv: (kv[0] == "all", kv[0])),
        num=_num,
        pct=_pct,
    )


def events_text(run: RunFolder) -> str:
    """The platform's events as one line each, timed from the fault's start when known."""
    start, _ = run.fault_window
    origin = start if start is not None else (run.events[0]["t"] if run.events else 0.0)
    label = "fault start" if start is not None else "first event"
    lines = [f"platform events of target {run.target} (seconds from the {label})"]
    for event in run.events:
        details = " ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in event.items()
            if k not in ("seq", "t", "kind")
        )
        t = event.get("t")
        when = f"{t - origin:+8.2f} s" if isinstance(t, int | float) else "       ? s"
        lines.append(f"{when}  {event.get('kind', '?'):<22} {details}".rstrip())
    return "\n".join(lines) + "\n"
