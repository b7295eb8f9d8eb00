"""The console's terminal view: it fits 80x24 in both layouts, reads without colour, and
draws its sparklines and countdowns right. Its SVG screenshots go to docs/images/ only when
SHAKEOUT_DOCS_SCREENSHOTS=1 (so the usual run leaves the work tree clean)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import cast

import pytest
from rich.cells import cell_len
from rich.console import Console
from screens import docs_shots

from shakeout.gameday import view
from shakeout.gameday.snapshot import SPARK_S, Snapshot, sample

SGR = re.compile(r"\x1b\[([0-9;]*)m")
COLOUR_CODES = {*range(30, 50), *range(90, 98), *range(100, 108)}


def _waiting() -> Snapshot:
    """Between two steps: the console waits for go, with a long prompt and no fault."""
    snapshot = sample()
    snapshot["state"] = "waiting"
    snapshot["fault"] = None
    snapshot["prompt"] = (
        "go: the next step injects dependency-latency into payments "
        "(3 replicas, 800 ms added) for 30 seconds"
    )
    return snapshot


def _render(snapshot: Snapshot | None, *, large: bool, keys: str = view.KEYS_HELP) -> list[str]:
    """The view's rows on the plain 80x24 console of the brief."""
    console = Console(
        width=80,
        height=24,
        record=True,
        color_system=None,
        force_terminal=False,
        file=io.StringIO(),
    )
    console.print(view.render(snapshot, large=large, keys=keys))
    return console.export_text().splitlines()


def _busy() -> Snapshot:
    """The shop's four journeys and six objectives, a prompt that wraps, a full timeline."""
    snapshot = _waiting()
    snapshot["fault"] = sample()["fault"]
    journeys = snapshot["journeys"]
    snapshot["journeys"] = [*journeys, {**journeys[0], "name": "cart"},
                            {**journeys[0], "name": "product"}]  # fmt: skip
    green = snapshot["objectives"][1]
    snapshot["objectives"] += [{**green, "text": f"objective {n}"} for n in range(3)]
    snapshot["events"] = [{"t": snapshot["now"] - n, "text": f"event {n}"} for n in range(9)]
    return snapshot


@pytest.mark.parametrize("large", [False, True], ids=["console", "projector"])
@pytest.mark.parametrize(
    "snapshot", [sample(), _waiting(), _busy()], ids=["fault", "waiting", "busy"]
)
def test_a_drill_fits_80_columns_by_24_rows(snapshot: Snapshot, large: bool) -> None:
    lines = _render(snapshot, large=large)
    text = "\n".join(lines)
    assert len(lines) <= 24, f"{len(lines)} rows:\n{text}"
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert not too_wide, f"rows wider than 80 columns: {too_wide}"
    assert snapshot["scenario"] in text
    assert "[FAIL] browse error rate < 1%" in text
    assert view.KEYS_HELP in text
    if snapshot["prompt"]:
        assert "WAITING: go: the next step injects" in text


@pytest.mark.parametrize(("large", "rows"), [(False, 20), (True, 22)], ids=["console", "projector"])
def test_short_of_rows_green_objectives_give_way_never_a_breach(large: bool, rows: int) -> None:
    console = Console(width=80, height=rows, record=True, color_system=None, file=io.StringIO())
    console.print(view.render(_busy(), large=large, height=rows))
    text = console.export_text()
    assert len(text.splitlines()) <= rows, text
    assert "[FAIL] browse error rate < 1%" in text
    assert "[NEAR] checkout error rate < 0.5%" in text
    assert re.search(r"… and \d more objectives, all green", text), text


def test_the_console_view_shows_the_header_fault_journeys_and_timeline() -> None:
    text = "\n".join(_render(sample(), large=False))
    assert "Zone failure / Zone b failure and traffic fails over" in text
    assert "01:10" in text  # 70 s since the drill started
    assert "target local · state running · phase fault" in text
    assert "step 4/10: When zone b goes down for 6 seconds" in text
    assert "FAULT zone-outage  ends in 12 s  held +10 s of 60 s cap" in text
    assert "reach: zone b: 5 of 12 replicas" in text
    assert re.search(r"checkout +8\.0 +240 ms +310 ms +0\.4%", text)
    assert "errors, 1 min" in text
    assert "p95, 1 min" in text
    assert "0.42% vs 0.5%" in text
    assert "burn 4.2x" in text
    assert "latest (seconds from fault start)" in text
    assert "+0.9 s event zone b was found not ready" in text
    assert "+2.5 s ALERT ZoneDown firing" in text
    assert "+1.5 s note  on-call paged by the ZoneDown alert" in text


def test_the_projector_layout_puts_the_countdown_and_objectives_first() -> None:
    lines = _render(sample(), large=True)
    text = "\n".join(lines)
    assert text.index("ends in 12 s") < text.index("[NEAR]") < text.index("Zone failure /")
    assert "p95, 1 min" not in text
    assert "errors, 1 min" in text
    assert sum(" event " in line for line in lines) <= 3
    assert lines[0].startswith("FAULT zone-outage  ends in 12 s")
    assert not lines[1].strip(), "a blank line between the countdown and the objectives"


def test_lights_read_without_colour() -> None:
    out = io.StringIO()
    console = Console(width=80, no_color=True, force_terminal=True, file=out)
    snapshot = sample()
    snapshot["objectives"][1]["light"] = "none"
    snapshot["objectives"][1]["observed"] = None
    console.print(view.render(snapshot))
    printed = out.getvalue()
    colours = [
        code
        for params in SGR.findall(printed)
        for code in (int(p) for p in params.split(";") if p)
        if code in COLOUR_CODES
    ]
    assert not colours, "no_color still printed colour codes"
    text = SGR.sub("", printed)
    assert "[NEAR] checkout error rate < 0.5%" in text
    assert "[ -- ] checkout p95 < 300 ms" in text
    assert "no data vs 300 ms" in text
    assert "[FAIL] browse error rate < 1%" in text
    snapshot["objectives"][1]["light"] = "green"
    assert "[ OK ] checkout p95 < 300 ms" in view.to_text(snapshot)


def test_data_is_shown_as_written_never_as_markup() -> None:
    snapshot = sample()
    snapshot["notes"] = [{"t": snapshot["now"], "text": "[FAIL] is text, [bold]not markup[/]"}]
    assert "[FAIL] is text, [bold]not markup[/]" in view.to_text(snapshot)


def test_before_the_first_snapshot_the_view_says_it_waits() -> None:
    text = view.to_text(None)
    assert "waiting for the drill to start…" in text
    assert view.KEYS_HELP in text


def test_a_sparse_snapshot_renders() -> None:
    snapshot = sample()
    snapshot.update(
        step=None, phase=None, fault=None, journeys=[], objectives=[], events=[], alerts=[]
    )
    snapshot["notes"] = [{"t": snapshot["started_at"] - 30.0, "text": "room briefed"}]
    text = view.to_text(snapshot)
    assert "step -" in text
    assert "phase -" in text
    assert "FAULT" not in text
    assert "no journeys yet" in text
    assert "latest (seconds from drill start)" in text
    assert "-30.0 s note room briefed" in text
    assert "room briefed" in view.to_text(snapshot, large=True)


def test_a_snapshot_missing_its_optional_parts_renders() -> None:
    optional = ("prompt", "step", "phase", "fault", "journeys", "objectives", "events")
    kept = {k: v for k, v in sample().items() if k not in (*optional, "alerts", "notes")}
    snapshot = cast(Snapshot, kept)
    for large in (False, True):
        text = view.to_text(snapshot, large=large)
        assert "Zone b failure and traffic fails over" in text
        assert "latest" not in text


def test_a_custom_key_help_replaces_the_default() -> None:
    text = "\n".join(_render(sample(), large=False, keys="q quit"))
    assert "q quit" in text
    assert "g go" not in text


def test_sparkline_scales_to_the_maximum() -> None:
    assert view.sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert view.sparkline([0.0, 0.01, 100.0], 3) == "▁▂█", "above zero is above the baseline"
    assert view.sparkline([0.0, 0.0, 0.0], 3) == "▁▁▁"


def test_sparkline_draws_none_as_a_space() -> None:
    assert view.sparkline([None, 4.0, None, 0.0], 4) == " █ ▁"
    assert view.sparkline([None, None], 2) == "  "
    assert view.sparkline([], 3) == "   "


def test_sparkline_resamples_to_its_width_keeping_each_buckets_maximum() -> None:
    assert view.sparkline([0, 0, 8, 0, 0, 0, 0, 0], 2) == "█▁"
    assert view.sparkline([None, None, 2.0, None], 2) == " █"
    spike = [0.0] * 60
    spike[31] = 5.0
    line = view.sparkline(spike, 20)
    assert len(line) == 20
    assert line.count("█") == 1, "a one-second spike survives the resampling"
    assert view.sparkline([1.0, 2.0], 4) == "▅▅██", "fewer values than columns are stretched"


def test_last_minute_pads_the_start_of_the_drill_with_no_data() -> None:
    window = view.last_minute([1.0, 2.0])
    assert len(window) == SPARK_S
    assert window[-2:] == [1.0, 2.0]
    assert set(window[:-2]) == {None}
    assert view.last_minute(list(range(100))) == list(range(40, 100))


def test_countdown_and_holds() -> None:
    snapshot = sample()
    fault, now = snapshot["fault"], snapshot["now"]
    assert fault is not None
    assert view.countdown(fault, now) == "ends in 12 s"
    assert view.countdown({**fault, "ends_at": now + 11.2}, now) == "ends in 12 s"
    assert view.countdown({**fault, "ends_at": now - 3.0}, now) == "ends in 0 s"
    assert view.countdown({**fault, "ends_at": None}, now) == "elapsed 4 s"
    assert view.countdown({**fault, "started_at": None}, now) == "not started"
    assert view.hold(fault) == "held +10 s of 60 s cap"
    assert view.clock(70.9) == "01:10"
    assert view.clock(3725.0) == "62:05"


def test_svg_screenshots_of_both_layouts(tmp_path: Path) -> None:
    shots = docs_shots(tmp_path)
    for name, large in (
        ("gameday-view-sample.svg", False),
        ("gameday-view-sample-large.svg", True),
    ):
        path = shots / name
        view.to_svg(sample(), path, large=large, title="ShakeOut game day: zone b failure")
        svg = path.read_text(encoding="utf-8")
        assert svg.startswith("<svg")
        assert "zone-outage" in svg
