"""Reading run folders and rendering a drill's evidence: chart, verdict table, load, events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.patches import Rectangle

from conftest import FAIL_ZONE, PASS_CRASH, PASS_ZONE
from shakeout.errors import ConfigError
from shakeout.report.chart import draw, recovery_at, render_png
from shakeout.report.runs import read_run
from shakeout.report.scorecard import Comparison
from shakeout.report.tables import events_text, fmt, load_table, verdict_table


def test_read_run_takes_verdicts_json() -> None:
    run = read_run(FAIL_ZONE)
    assert run.outcome == "fail"
    assert run.target == "local-fragile"
    assert run.verdicts is not None
    assert run.verdicts.budget_burned_pct == 450.5
    assert run.fault_window == (1795614765.358697, 1795614771.633056)
    assert [p.name for p in run.journals] == ["journal-zone_outage.json"]
    assert set(run.series) == {"all", "browse", "cart", "checkout", "product"}
    assert run.series["checkout"][5].errors == 3


def test_a_run_without_verdicts_json_still_reads(run_copy: Path) -> None:
    (run_copy / "verdicts.json").unlink()
    run = read_run(run_copy)
    assert run.outcome is None
    assert run.rows == []
    assert run.drill == "test_zone_b_failure_and_traffic_fails_over[goes down]"
    # The fault window falls back to the summary's faults.
    assert run.fault_window == (1795617547.502923, 1795617553.743695)


def test_bad_verdicts_json_names_file_and_field(run_copy: Path) -> None:
    path = run_copy / "verdicts.json"
    data = json.loads(path.read_text())
    data["verdicts"][1]["status"] = "sort of"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"verdicts\.json: field verdicts\.1\.status"):
        read_run(run_copy)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"verdicts\.json: not valid JSON \(line 1\)"):
        read_run(run_copy)


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        read_run(tmp_path)


def test_chart_shades_the_fault_window_and_marks_recovery(tmp_path: Path) -> None:
    run = read_run(FAIL_ZONE)
    fig = draw(run)
    origin = min(p.t for p in run.series["all"])
    start, end = run.fault_window
    assert start is not None
    assert end is not None
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["requests / s", "latency (ms)", "errors (%)"]
    for ax in axes:
        spans = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(spans) == 1
        x0 = spans[0].get_x()
        assert x0 == pytest.approx(start - origin)
        assert x0 + spans[0].get_width() == pytest.approx(end - origin)
        # The recovery line sits 7.2 s after the fault's start (verdicts.json).
        marks = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
        assert pytest.approx(start + 7.2 - origin) in marks
    assert recovery_at(run) == pytest.approx(start + 7.2)
    # The error panel's "all" line peaks where the fragile target failed (> 60% errors).
    all_errors = next(line for line in axes[2].lines if line.get_label() == "all")
    assert max(all_errors.get_ydata()) > 60
    out = render_png(run, tmp_path / "chart.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_needs_points(run_copy: Path) -> None:
    (run_copy / "timeseries.json").write_text("{}")
    with pytest.raises(ValueError, match="no points"):
        draw(read_run(run_copy))


def test_verdict_table_lists_failures_first_and_escapes(fail_copy: Path) -> None:
    path = fail_copy / "verdicts.json"
    data = json.loads(path.read_text())
    data["verdicts"][1]["objective"] = "<script>alert(1)</script>"
    path.write_text(json.dumps(data))
    comparison = Comparison("20261124-020000", ["recovery time 1.0 s -> 7.2 s"])
    comparison.regressions.append("recovery time 1.0 s -> 7.2 s (up more than 20%)")
    html = verdict_table(read_run(fail_copy), comparison)
    assert "Outcome: fail" in html
    assert "<pre>SLOBreach: SLO breached: checkout error rate &lt; 1%" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    first_fail = html.index('<tr class="fail">')
    first_pass = html.index('<tr class="pass">')
    assert first_fail < first_pass
    assert "45.1%" in html  # observed, with its unit
    assert "REGRESSION: recovery time 1.0 s -&gt; 7.2 s" in html
    assert "Error budget burned: 450%" in html


def test_load_table_and_events() -> None:
    run = read_run(PASS_CRASH)
    html = load_table(run)
    assert "steady at 40 rps" in html
    assert html.index("<td>browse</td>") < html.index("<td>all</td>")  # "all" last
    text = events_text(run)
    lines = text.splitlines()
    assert "seconds from the fault start" in lines[0]
    assert any("rollout_rolled_back" in line for line in lines)
    # Events are timed from the fault's start: the rollout starts right after it.
    started = next(line for line in lines if "rollout_started" in line)
    assert 0 <= float(started.split()[0]) < 2


def test_fmt_units() -> None:
    assert fmt(None, "ms") == ""
    assert fmt(11.551, "ms") == "11.6 ms"
    assert fmt(0.5, "%") == "0.5%"
    assert fmt(3, "orders") == "3 orders"


def test_pass_zone_fixture_is_a_pass() -> None:
    assert read_run(PASS_ZONE).outcome == "pass"
