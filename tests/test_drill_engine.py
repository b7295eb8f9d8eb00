"""The drill engine against a fake target session: verdicts as data, the steady state after a
fault's rollbacks, and the outcome kept in ``verdicts.json``.

A real ``chaos run`` plays a tiny experiment (its only activity checks that a path exists), so
the journal, the fault window and the undo record are the real ones; the target is a fake
session, so no platform is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from shakeout.drill import Drill
from shakeout.errors import FaultError, PlatformError, SLOBreach

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0

NOOP_EXPERIMENT = {
    "version": "1.0.0",
    "title": "Nothing happens",
    "description": "A fault that touches nothing, for engine tests.",
    "method": [
        {
            "type": "probe",
            "name": "revert-nothing",
            "provider": {
                "type": "python",
                "module": "os.path",
                "func": "exists",
                "arguments": {"path": "."},
            },
        }
    ],
    "rollbacks": [],
}


class FakeSession:
    """A target whose steady state and events the test decides."""

    kind = "local"
    remote_workers = 0

    def __init__(self, target_file: Path, steady: bool = True) -> None:
        self.target = "fake"
        self.target_file = target_file
        self.fault_experiments = yaml.safe_load(target_file.read_text(encoding="utf-8"))["faults"]
        self.slo_file = target_file.parent / "local.slo.yaml"
        self.gateway_url = "http://127.0.0.1:9"
        self.steady = steady
        self.checks = 0
        self.unsteady_from: int | None = None  # the n-th check on is not steady
        self.event_log: list[dict[str, Any]] = [{"seq": 1, "t": T0, "kind": "started"}]

    def chaos_configuration(self) -> dict[str, Any]:
        return {"shakeout_target": self.target}

    def start_workers(self, spec: Any) -> None:
        raise AssertionError("no remote workers on this target")

    def stop_workers(self) -> None:
        pass

    def fault_skip_reason(self, experiment: Path) -> str | None:
        return None

    def orders(self) -> None:
        return None

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.event_log if e["seq"] > since]

    def rollout(self, service: str) -> dict[str, Any] | None:
        return {
            "version": "v2",
            "status": "rolled_back",
            "reason": "canary error rate 30% above 5%",
            "started_at": T0,
            "ended_at": T0 + 4.0,
        }

    def alerting(self) -> str:
        return "this fake target has no alerting"

    def steady_state(self) -> tuple[bool, str]:
        self.checks += 1
        steady = self.steady if self.unsteady_from is None else self.checks < self.unsteady_from
        return (True, "") if steady else (False, "not ready: orders-1")


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSession:
    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(tmp_path / "runtime"))
    experiment = tmp_path / "noop.json"
    experiment.write_text(json.dumps(NOOP_EXPERIMENT), encoding="utf-8")
    target = yaml.safe_load((ROOT / "targets" / "local.yaml").read_text(encoding="utf-8"))
    target["faults"] = {"nothing": str(experiment)}
    (tmp_path / "local.slo.yaml").write_text(
        (ROOT / "targets" / "local.slo.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    target_file = tmp_path / "target.yaml"
    target_file.write_text(yaml.safe_dump(target), encoding="utf-8")
    return FakeSession(target_file)


def test_steady_state_after_the_fault_is_a_verdict(session: FakeSession, tmp_path: Path) -> None:
    drill = Drill(session, "steady", tmp_path / "reports")
    result = drill.inject("nothing")
    assert result.status == "completed"
    assert result.fault_start is not None
    (verdict,) = drill.check_steady_state()
    assert verdict.status == "pass"
    assert verdict.phase == "recovery"
    run_dir = drill.close()
    document = json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8"))
    assert document["outcome"] == "pass"
    assert document["verdicts"][0]["kind"] == "steady_state"
    assert document["phases"]["fault"][0] == pytest.approx(result.fault_start)


def test_target_not_back_in_steady_state_fails_with_what_is_wrong(
    session: FakeSession, tmp_path: Path
) -> None:
    session.unsteady_from = 2  # steady before the fault, never after it
    drill = Drill(session, "not steady", tmp_path / "reports")
    drill.steady_state_timeout_s = 0.5
    drill.inject("nothing")
    (verdict,) = drill.check_steady_state()
    assert verdict.status == "fail"
    assert "not ready: orders-1" in verdict.message
    assert verdict in drill.verdicts
    document = drill.verdict_document()
    assert document["outcome"] == "fail"


def test_outcome_tells_breach_from_harness_error_and_no_verdict_is_inconclusive(
    session: FakeSession, tmp_path: Path
) -> None:
    drill = Drill(session, "outcomes", tmp_path / "reports")
    assert drill.outcome() == "inconclusive"  # nothing was judged: never a silent pass
    assert drill.outcome(SLOBreach("SLO breached: x")) == "fail"
    assert drill.outcome(RuntimeError("a step crashed")) == "error"
    verdict = drill.check_rollout("catalog", "rolled_back", within_s=5)
    assert verdict.status == "pass"
    assert verdict.observed == pytest.approx(4.0)
    assert drill.outcome() == "pass"
    late = drill.check_rollout("catalog", "rolled_back", within_s=3)
    assert late.status == "fail"
    assert "within 3 s" in late.message
    assert drill.check_rollout("catalog", "promoted", within_s=30).status == "fail"
    run_dir = drill.close(RuntimeError("a step crashed"))
    document = json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8"))
    assert document["outcome"] == "error"
    assert document["error"] == "RuntimeError: a step crashed"
    kinds = [v["kind"] for v in document["verdicts"]]
    assert kinds == ["rollout", "rollout", "rollout"]


def test_event_check_reads_the_targets_events_since_the_drill_began(
    session: FakeSession, tmp_path: Path
) -> None:
    drill = Drill(session, "events", tmp_path / "reports")
    assert drill.check_event("breaker_opened").status == "fail"
    session.event_log.append({"seq": 2, "t": T0 + 1, "kind": "breaker_opened"})
    verdict = drill.check_event("breaker_opened")
    assert verdict.status == "pass"
    assert verdict.observed == 1
    assert drill.check_event("started").status == "fail"  # it happened before the drill


def test_fast_burn_stop_condition_is_read_against_the_budget(
    session: FakeSession, tmp_path: Path
) -> None:
    drill = Drill(session, "burn", tmp_path / "reports")
    condition = drill.stop_when_burning(14.4, 3)
    assert condition.max_error_rate == pytest.approx(0.144)  # 14.4 x a 1% budget
    assert "burning at 20.0x" in condition.describe(0.20)
    assert "above 14.4x" in condition.describe(0.20)


def test_no_fault_is_injected_while_the_target_is_not_in_steady_state(
    session: FakeSession, tmp_path: Path
) -> None:
    session.steady = False
    drill = Drill(session, "unsteady start", tmp_path / "reports")
    drill.steady_state_timeout_s = 0.3
    with pytest.raises(PlatformError, match=r"not ready: orders-1.*'nothing' was not injected"):
        drill.inject("nothing")
    assert not list(drill.run_dir.glob("journal-*.json"))  # chaos never ran


def test_an_experiment_whose_method_never_ran_is_a_fault_not_applied(
    session: FakeSession, tmp_path: Path
) -> None:
    experiment = json.loads(json.dumps(NOOP_EXPERIMENT))
    experiment["steady-state-hypothesis"] = {
        "title": "a file that is not there",
        "probes": [
            {
                "type": "probe",
                "name": "missing-file",
                "tolerance": True,
                "provider": {
                    "type": "python",
                    "module": "os.path",
                    "func": "exists",
                    "arguments": {"path": "/nonexistent/shakeout"},
                },
            }
        ],
    }
    path = Path(session.target_file).parent / "noop.json"
    path.write_text(json.dumps(experiment), encoding="utf-8")
    drill = Drill(session, "not applied", tmp_path / "reports")
    with pytest.raises(FaultError, match=r"'nothing' was not applied.*method never ran"):
        drill.inject("nothing")
    assert drill.outcome(FaultError("x")) == "error"
