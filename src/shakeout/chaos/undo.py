"""Undo records: what to roll back if the harness and ``chaos run`` both die mid-fault.

Before a fault is injected, an undo record is written to the target's runtime folder
(``<runtime>/<target>/undo/<id>.json``): the experiment, its variables, and its rollbacks. A
run that ends normally (rollbacks played, whatever the verdict) removes it. A record left
behind means nobody played the rollbacks: ``shakeout cleanup`` (and the start of the next
drill) plays them with ``chaos run``, then checks the target's steady state.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shakeout.chaos.runner import run_experiment
from shakeout.errors import FaultError
from shakeout.platform.state import pid_alive, state_dir


@dataclass(frozen=True)
class UndoRecord:
    """One fault that may still need its rollbacks."""

    id: str
    target: str
    experiment: str
    variables: dict[str, Any]
    harness_pid: int
    created_at: float

    @property
    def path(self) -> Path:
        """Where the record lives."""
        return undo_dir(self.target) / f"{self.id}.json"

    def remove(self) -> None:
        """The fault was rolled back: forget it."""
        self.path.unlink(missing_ok=True)


def undo_dir(target: str) -> Path:
    """Folder of a target's undo records."""
    return state_dir(target) / "undo"


def write_record(target: str, experiment: Path, variables: dict[str, Any]) -> UndoRecord:
    """Persist an undo record (fsynced) before the fault is injected."""
    record = UndoRecord(
        id=f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}",
        target=target,
        experiment=str(experiment.resolve()),
        variables=variables,
        harness_pid=os.getpid(),
        created_at=time.time(),
    )
    record.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(asdict(record), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, record.path)
    return record


def pending(target: str, include_live: bool = False) -> list[UndoRecord]:
    """Undo records whose harness is gone (or all of them with ``include_live``)."""
    records = []
    for path in sorted(undo_dir(target).glob("*.json")):
        try:
            record = UndoRecord(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise FaultError(f"{path}: unreadable undo record: {exc}") from exc
        if include_live or not pid_alive(record.harness_pid):
            records.append(record)
    return records


def _rollback_experiment(record: UndoRecord, directory: Path) -> Path:
    """An experiment whose method is the original's rollbacks, then a wait for recovery.

    Chaos Toolkit cannot play only the rollbacks of an experiment, so the cleanup runs them
    as the method of a derived experiment. It has no steady-state hypothesis: before the
    rollbacks the target is, by definition, not in steady state, and a failed hypothesis
    would skip the method. Recovery is read from the last probe instead.
    """
    try:
        original = json.loads(Path(record.experiment).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FaultError(
            f"undo record {record.path}: cannot read experiment {record.experiment}: {exc}; "
            "finish its rollback by hand"
        ) from exc
    derived = {
        "version": original.get("version", "1.0.0"),
        "title": f"Roll back: {original.get('title', record.experiment)}",
        "description": f"Rollbacks of {record.experiment} left behind by run {record.id}.",
        "configuration": original.get("configuration", {}),
        "method": [
            *original.get("rollbacks", []),
            {
                "type": "probe",
                "name": "wait-until-ready",
                "provider": {
                    "type": "python",
                    "module": "shakeout.chaos.local.probes",
                    "func": "wait_until_ready",
                    "arguments": {"timeout_s": 30},
                },
            },
        ],
        "rollbacks": [],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"rollback-{record.id}.json"
    path.write_text(json.dumps(derived, indent=2), encoding="utf-8")
    return path


def finish(record: UndoRecord, work_dir: Path) -> str:
    """Play a left-behind record's rollbacks and check steady state; return a summary line."""
    experiment = _rollback_experiment(record, work_dir)
    result = run_experiment(experiment, work_dir, record.variables)
    failed = [a.name for a in result.method if a.status != "succeeded"]
    recovered = bool(result.method) and bool((result.method[-1].output or {}).get("ready"))
    if failed or not recovered:
        raise FaultError(
            f"undo record {record.path}: rollback of {record.experiment} did not complete "
            f"({result.summary()}; failed: {', '.join(failed) or 'none'}; steady state "
            f"{'met' if recovered else 'NOT met'}); "
            f"journal {result.journal_path}. Finish it by hand, then delete the record."
        )
    record.remove()
    return f"rolled back {Path(record.experiment).name} from run {record.id}; steady state met"
