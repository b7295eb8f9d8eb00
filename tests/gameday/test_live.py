"""The drill side of a game day: controls in, the live snapshot out, holds within the cap."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from shakeout._process import wait_for
from shakeout.chaos import hold
from shakeout.drill import Drill
from shakeout.gameday import snapshot
from shakeout.gameday.live import CONTROLS_FILE, ControlTail, GameDayRun, send

HEADER = {"feature": "F", "feature_file": "f.feature", "scenario": "S", "target": "local"}


def _drill(tmp_path: Path) -> Drill:
    """Just what the game day reads of a drill: no load yet, no SLO file, no events."""
    return cast(
        Drill,
        SimpleNamespace(
            max_load_s=240.0,
            injector=SimpleNamespace(end_early=None),
            platform=SimpleNamespace(events=lambda since=0: []),
            alerts=SimpleNamespace(live=list),
            load=None,
            slo=None,
            run_dir=tmp_path / "run",
        ),
    )


@pytest.fixture
def run(tmp_path: Path) -> Any:
    day = GameDayRun(tmp_path / "day", auto=False, hold_cap_s=20.0)
    yield day
    day.close()


def _live(run: GameDayRun) -> dict[str, Any]:
    found = snapshot.read(run.dir / snapshot.LIVE_FILE)
    return dict(found) if found is not None else {}


def _published(run: GameDayRun, check: Any, what: str) -> dict[str, Any]:
    assert wait_for(lambda: check(_live(run)), 10.0), f"never published: {what}"
    return _live(run)


def test_only_whole_lines_are_read_and_each_once(tmp_path: Path) -> None:
    tail = ControlTail(tmp_path / CONTROLS_FILE)
    assert tail.read() == []
    send(tmp_path, "note", "first")
    with (tmp_path / CONTROLS_FILE).open("a", encoding="utf-8") as out:
        out.write('{"t": 1, "control": "go"')  # a line still being written
    assert [c["detail"] for c in tail.read()] == ["first"]
    with (tmp_path / CONTROLS_FILE).open("a", encoding="utf-8") as out:
        out.write(', "detail": ""}\n')
    assert [c["control"] for c in tail.read()] == ["go"]
    assert tail.read() == []


@pytest.mark.parametrize(("control", "expected"), [("go", True), ("no-go", False)])
def test_the_drill_waits_for_the_facilitators_word(
    run: GameDayRun, tmp_path: Path, control: str, expected: bool
) -> None:
    run.begin(HEADER, {"steps": []}, _drill(tmp_path))
    answer: list[bool] = []
    waiter = threading.Thread(target=lambda: answer.append(run.wait_for_go("go / no-go", "start")))
    waiter.start()
    _published(run, lambda d: d.get("state") == "waiting", "the waiting state")
    assert not answer, "went on without a word from the facilitator"
    send(run.dir, control)
    waiter.join(timeout=10)
    assert answer == [expected]
    assert (
        _published(run, lambda d: d.get("state") == "running", "running")["controls"][0]["control"]
        == control
    )


def test_auto_mode_never_waits(tmp_path: Path) -> None:
    day = GameDayRun(tmp_path / "day", auto=True, hold_cap_s=0.0)
    try:
        assert day.wait_for_go("go?", "start") is True
    finally:
        day.close()


def test_holds_add_time_up_to_the_targets_cap_and_end_fault_ends_it(
    run: GameDayRun, tmp_path: Path
) -> None:
    drill = _drill(tmp_path)
    run.begin(HEADER, {"steps": []}, drill)
    send(run.dir, "hold")
    _published(run, lambda d: d.get("controls"), "the refused hold")
    assert _live(run)["controls"][-1]["detail"] == "refused: no fault is active"
    run.fault("zone-outage", "When zone b goes down", "zone b", 6.0)
    for _ in range(3):
        send(run.dir, "hold")
    doc = _published(run, lambda d: len(d.get("controls", [])) == 4, "three holds")
    assert [c["detail"] for c in doc["controls"][1:]] == [
        "+10 s (10 of 20 s)",
        "+10 s (20 of 20 s)",
        "refused: the target allows 20 s of hold in all",
    ]
    assert json.loads((run.dir / hold.EXTRA_FILE).read_text())["extra_s"] == 20.0
    assert drill.injector.end_early is not None
    assert drill.injector.end_early() is None
    send(run.dir, "end-fault")
    assert wait_for(lambda: drill.injector.end_early() is not None, 10.0)  # type: ignore[misc]
    send(run.dir, "note", "paged")
    _published(run, lambda d: d.get("notes"), "the note")
    path = run.end("pass")
    kept = json.loads(path.read_text())
    kinds = [entry["kind"] for entry in kept["timeline"]]
    assert kept["outcome"] == "pass"
    assert kinds.count("control") == 6
    assert kept["notes"][0]["text"] == "paged"


def test_the_fault_holds_for_what_the_facilitator_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hold.HOLD_ENV, str(tmp_path))
    hold.write_json(tmp_path / hold.EXTRA_FILE, {"extra_s": 0.3})
    held = hold.hold_fault(0.05)
    assert held >= 0.35  # the planned time plus the hold, never less
    holding = json.loads((tmp_path / hold.HOLDING_FILE).read_text())
    assert holding["planned_s"] == 0.05


def test_without_a_game_day_the_fault_holds_for_its_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hold.HOLD_ENV, raising=False)
    assert hold.hold_fault(0.01) == 0.01
