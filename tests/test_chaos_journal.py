"""Reading a Chaos Toolkit journal recorded from a real crash-loop run."""

from __future__ import annotations

from pathlib import Path

import pytest

from shakeout.chaos.runner import _var, read_journal
from shakeout.errors import FaultError

JOURNAL = Path(__file__).parent / "data" / "journal-crash-loop.json"


def test_phases_come_from_activity_timestamps() -> None:
    run = read_journal(Path("scenarios/crash_loop.json"), JOURNAL, 0)
    assert run.status == "completed"
    assert not run.deviated
    assert [a.name for a in run.method] == [
        "roll-out-crash-looping-release",
        "wait-for-rollout-outcome",
    ]
    assert run.rollbacks_ok
    assert run.fault_start is not None
    assert run.fault_end is not None
    assert 0 < run.fault_end - run.fault_start < 60
    outcome = run.method[1].output
    assert outcome["status"] == "rolled_back"


def test_missing_journal_is_a_fault_error(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="no readable journal"):
        read_journal(Path("x.json"), tmp_path / "none.json", 1)


def test_variables_keep_their_type_on_the_command_line() -> None:
    assert _var("service", "orders") == "service=orders"
    assert _var("weight", 0.5) == "weight:float=0.5"
    assert _var("count", 3) == "count:int=3"
