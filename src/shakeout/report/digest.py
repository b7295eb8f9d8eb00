"""Writing the weekly digest (:mod:`shakeout.report.weekly`): charts, markdown and HTML.

Charts are drawn with matplotlib's Figure API (Agg, as the drill charts); the HTML comes from
the same rows as the markdown through an autoescaped jinja2 template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from shakeout.history import connect
from shakeout.report.weekly import Drill, Week, latest_night, read_week, summary

OUTCOME_CODES = {"pass": 1, "inconclusive": 2, "fail": 3, "aborted": 4, "error": 4}
OUTCOME_COLOURS = ["#ffffff", "#2e7d32", "#f9a825", "#c62828", "#4a148c"]  # none first
SYMBOLS = {"pass": "✓", "fail": "✗", "inconclusive": "?", "aborted": "A", "error": "E"}


@dataclass(frozen=True)
class Digest:
    """What was written."""

    markdown: Path
    html: Path
    charts: list[Path]
    week: Week


def _last(drill: Drill, night: str) -> str | None:
    runs = [r for r in drill.runs if r.night == night]
    return runs[-1].outcome if runs else None


def outcomes_chart(week: Week, out: Path) -> Path:
    """Each drill's outcome each night (its last run that night), as coloured cells."""
    drills = [d for d in week.drills if d.runs]
    fig = Figure(figsize=(2.5 + 0.9 * len(week.nights), 1 + 0.4 * len(drills)), layout="tight")
    ax = fig.subplots()
    path = out / "outcomes.png"
    if not drills:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no drill ran in these nights", ha="center", va="center")
        fig.savefig(path, dpi=90)
        return path
    grid = [[OUTCOME_CODES.get(_last(d, n) or "", 0) for n in week.nights] for d in drills]
    ax.imshow(grid, cmap=ListedColormap(OUTCOME_COLOURS), vmin=0, vmax=4, aspect="auto")
    for y, drill in enumerate(drills):
        for x, night in enumerate(week.nights):
            outcome = _last(drill, night)
            if outcome:
                ax.text(x, y, SYMBOLS.get(outcome, "?"), ha="center", va="center", color="white")
    ax.set_xticks(range(len(week.nights)), [n[5:] for n in week.nights])
    ax.set_yticks(range(len(drills)), [_short(d.title) for d in drills], fontsize=8)
    ax.set_title("outcome per night (the night's last run)", fontsize=10)
    ax.set_xlabel("✓ pass  ✗ fail  ? inconclusive  A aborted  E error", fontsize=8)
    fig.savefig(path, dpi=90)
    return path


def _short(title: str, width: int = 48) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def _series_chart(week: Week, out: Path, name: str, title: str, ylabel: str, value: str) -> Path:
    """One line per drill: a figure of its runs per night (the night's last run)."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    for drill in week.drills:
        points = []
        for x, night in enumerate(week.nights):
            runs = [r for r in drill.runs if r.night == night]
            figure = getattr(runs[-1], value) if runs else None
            if figure is not None:
                # limit use on a log scale: 5% and 5000% both readable; 0 drawn at 0.1%
                points.append((x, max(figure * 100.0, 0.1) if value == "tightest" else figure))
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", lw=1.2, label=_short(drill.title, 40))
    ax.set_xticks(range(len(week.nights)), week.nights, fontsize=8)
    if value == "tightest":
        ax.axhline(100.0, color="tab:red", ls="--", lw=1, label="the limit")
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.text(0.5, 0.5, "no figure in these nights", ha="center", transform=ax.transAxes)
    path = out / name
    fig.savefig(path, dpi=90)
    return path


def _rows(week: Week) -> list[dict[str, str]]:
    rows = []
    for drill in (d for d in week.drills if d.runs):
        worse, better = drill.changes()
        recovery = [r.recovery_s for r in drill.runs if r.recovery_s is not None]
        alerts = [r.time_to_alert_s for r in drill.runs if r.time_to_alert_s is not None]
        budget = [r.budget_burned_pct for r in drill.runs if r.budget_burned_pct is not None]
        tight = [r.tightest for r in drill.runs if r.tightest is not None]
        rows.append(
            {
                "drill": drill.title,
                "nights": "".join(SYMBOLS.get(r.outcome, "?") for r in drill.runs),
                "pass rate": f"{drill.pass_rate:.0%} of {len(drill.runs)}",
                "flaky": f"{drill.flips} flips" if drill.flaky else "",
                "tightest limit used": f"{max(tight):.0%}" if tight else "-",
                "recovery (max)": f"{max(recovery):.1f} s" if recovery else "-",
                "time to alert (max)": f"{max(alerts):.1f} s" if alerts else "-",
                "budget burned (max)": f"{max(budget):.0f}%" if budget else "-",
                "vs the week before": "; ".join(
                    [*(f"worse: {w}" for w in worse), *(f"better: {b}" for b in better)]
                ),
            }
        )
    return rows


def _markdown(week: Week, rows: list[dict[str, str]], charts: list[Path]) -> str:
    lines = [f"# Weekly drill digest: {week.nights[0]} to {week.nights[-1]}", ""]
    lines += [f"- {line}" for line in summary(week)]
    lines += ["", "## Drills", ""]
    if rows:
        heads = list(rows[0])
        lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        lines += ["| " + " | ".join(r[h].replace("|", "\\|") for h in heads) + " |" for r in rows]
    else:
        lines.append("No drill ran in these nights.")
    lines += ["", "## Charts", ""]
    lines += [f"![{c.stem}]({c.name})" for c in charts]
    return "\n".join(lines) + "\n"


_HTML = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Weekly drill digest {{ first }} to {{ last }}</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}
th{background:#eee}.summary li{margin:2px 0}img{max-width:100%;margin:1em 0}</style></head>
<body><h1>Weekly drill digest: {{ first }} to {{ last }}</h1>
<ul class="summary">{% for line in summary %}<li>{{ line }}</li>{% endfor %}</ul>
<h2>Drills</h2>{% if rows %}<table><tr>{% for h in rows[0] %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for h in r %}<td>{{ r[h] }}</td>{% endfor %}</tr>{% endfor %}
</table>{% else %}<p>No drill ran in these nights.</p>{% endif %}
<h2>Charts</h2>{% for c in charts %}<img src="{{ c }}" alt="{{ c }}">{% endfor %}
</body></html>
"""
)


def write_digest(db_path: Path, out: Path, nights: int = 7, until: str | None = None) -> Digest:
    """Write the digest of the ``nights`` up to ``until`` (default: the newest in the history)
    into ``out``; ValueError when the history holds no run."""
    db = connect(db_path)
    try:
        until = until or latest_night(db)
        if until is None:
            raise ValueError(f"{db_path}: the results history holds no run yet")
        week = read_week(db, nights, until)
    finally:
        db.close()
    out.mkdir(parents=True, exist_ok=True)
    charts = [
        outcomes_chart(week, out),
        _series_chart(
            week,
            out,
            "margins.png",
            "the most of a limit any objective used",
            "% of the limit",
            "tightest",
        ),
        _series_chart(
            week,
            out,
            "recovery.png",
            "recovery time from the fault's start",
            "seconds",
            "recovery_s",
        ),
    ]
    rows = _rows(week)
    markdown = out / "digest.md"
    markdown.write_text(_markdown(week, rows, charts), encoding="utf-8")
    html = out / "index.html"
    html.write_text(
        _HTML.render(
            first=week.nights[0],
            last=week.nights[-1],
            summary=summary(week),
            rows=rows,
            charts=[c.name for c in charts],
        ),
        encoding="utf-8",
    )
    return Digest(markdown, html, charts, week)
