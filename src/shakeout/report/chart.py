"""The drill chart: throughput, latency percentiles and error rate per second.

Drawn with matplotlib's Agg backend (no display needed), one PNG per drill, the fault window
shaded on every panel and the recovery moment marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The Figure API without pyplot: no global figure registry (nothing to close, nothing to leak
# over a night of drills) and no GUI backend; savefig renders with Agg.
from matplotlib.figure import Figure

from shakeout.report.runs import Point, RunFolder

ALL = "all"  # the engine's key for the series over every journey
# Each point is the second [t, t+1): drawn as steps, a value spans its whole second instead of
# sloping in from the previous one (which would show errors before the fault started).
STEP: dict[str, str] = {"drawstyle": "steps-post"}


def _rel(points: list[Point], origin: float) -> list[float]:
    return [p.t - origin for p in points]


def _error_pct(p: Point) -> float:
    # Dropped requests never reached the target, but a shopper still did not get an answer.
    return 100.0 * (p.errors + p.dropped) / p.requests if p.requests else 0.0


def recovery_at(run: RunFolder) -> float | None:
    """Epoch second at which the recovery journey was healthy again, or None."""
    start, _ = run.fault_window
    rec = run.verdicts.recovery if run.verdicts else None
    if start is None or rec is None or rec.from_fault_start_s is None:
        return None
    return start + rec.from_fault_start_s


def draw(run: RunFolder) -> Figure:
    """The three-panel figure of a drill; raises ValueError when the run has no series."""
    series = {name: pts for name, pts in run.series.items() if pts}
    if not series:
        raise ValueError(f"{run.path}: timeseries.json has no points to draw")
    origin = min(p.t for pts in series.values() for p in pts)
    journeys = sorted(name for name in series if name != ALL)
    total = series.get(ALL)

    fig = Figure(figsize=(10, 8), layout="constrained")
    ax_rps, ax_lat, ax_err = fig.subplots(3, 1, sharex=True)
    fig.suptitle(f"{run.drill}  (target {run.target})", fontsize=11)

    for name in journeys:
        pts = series[name]
        ax_rps.plot(_rel(pts, origin), [p.requests for p in pts], lw=1, label=name, **STEP)
        ax_err.plot(_rel(pts, origin), [_error_pct(p) for p in pts], lw=1, label=name, **STEP)
    if total:
        x = _rel(total, origin)
        ax_rps.plot(x, [p.requests for p in total], lw=2, color="black", label="all", **STEP)
        ax_err.plot(x, [_error_pct(p) for p in total], lw=2, color="black", label="all", **STEP)
        # Percentiles of the whole stream come from the engine's merged histograms; they
        # cannot be derived from the per-journey percentiles.
        for key, style in (("p50_ms", ":"), ("p95_ms", "-"), ("p99_ms", "--")):
            ax_lat.plot(
                x,
                [getattr(p, key) if getattr(p, key) is not None else float("nan") for p in total],
                style,
                lw=1.5,
                color="tab:purple",
                label=f"all {key[:3]}",
                **STEP,
            )
    focus = run.verdicts.recovery.journey if run.verdicts and run.verdicts.recovery else None
    if focus in series and focus != ALL:
        pts = series[focus]
        ax_lat.plot(
            _rel(pts, origin),
            [p.p95_ms if p.p95_ms is not None else float("nan") for p in pts],
            lw=1.2,
            color="tab:orange",
            label=f"{focus} p95",
            **STEP,
        )

    ax_rps.set_ylabel("requests / s")
    ax_lat.set_ylabel("latency (ms)")
    ax_err.set_ylabel("errors (%)")
    ax_err.set_xlabel("seconds since the drill's first request")
    # A clean drill has no errors: keep a readable 0-1% scale instead of matplotlib's 0-0.05.
    peak = max((_error_pct(p) for pts in series.values() for p in pts), default=0.0)
    ax_err.set_ylim(0, max(1.0, peak * 1.1))
    ax_rps.set_ylim(bottom=0)
    ax_lat.set_ylim(bottom=0)

    start, end = run.fault_window
    if start is not None:
        last = max(p.t for pts in series.values() for p in pts) + 1
        for ax in (ax_rps, ax_lat, ax_err):
            ax.axvspan(
                start - origin,
                (end if end is not None else last) - origin,
                color="tab:red",
                alpha=0.12,
                label="fault" if ax is ax_rps else None,
            )
    recovered = recovery_at(run)
    if recovered is not None and start is not None:
        for ax in (ax_rps, ax_lat, ax_err):
            ax.axvline(recovered - origin, color="tab:green", lw=1.5, ls="--")
        ax_err.annotate(
            f"recovered {recovered - start:.1f} s after fault start",
            xy=(recovered - origin, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -12),
            textcoords="offset points",
            color="tab:green",
            fontsize=8,
        )
    _mark_alerts(run, origin, ax_err)
    for ax in (ax_rps, ax_lat, ax_err):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=7, ncols=6)
    return fig


def _mark_alerts(run: RunFolder, origin: float, ax: Any) -> None:
    """Each alert that fired: a bar along the top of the error panel, from firing to resolved
    (to the right edge while still firing), named where it starts."""
    alerts = run.verdicts.alerts if run.verdicts else []
    right = ax.get_xlim()[1]
    for i, alert in enumerate(alerts):
        y = 0.82 - 0.08 * (i % 8)  # below the legend
        start = alert.start - origin
        end = (alert.end - origin) if alert.end is not None else right
        label = "alert firing" if i == 0 else None
        where = ax.get_xaxis_transform()  # x in data, y in axes fraction
        ax.plot([start, end], [y, y], transform=where, color="tab:purple", lw=3, label=label)
        ax.annotate(
            alert.alert,
            xy=(start, y),
            xycoords=("data", "axes fraction"),
            xytext=(2, 3),
            textcoords="offset points",
            color="tab:purple",
            fontsize=7,
        )


def render_png(run: RunFolder, out: Path) -> Path:
    """Draw the drill chart into ``out`` (PNG) and return the path."""
    draw(run).savefig(out, format="png", dpi=90)
    return out
