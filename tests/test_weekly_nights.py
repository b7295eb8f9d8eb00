"""A week of real results: one drill run on five "nights" (two passing nights before the week,
then the fragile target, the resilient one, and an injected regression) into a temporary
results history; the digest's figures are checked against the runs' own verdicts.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from screens import ROOT

from shakeout import history
from shakeout.report.digest import write_digest

pytestmark = pytest.mark.drill

FEATURE = """\
Feature: Nightly zone probe
  Scenario: Zone b goes down for a moment and browsing carries on
    Given the target is up and every replica is ready
    And load of 20 requests per second from the "steady" profile
    And a baseline of 2 seconds
    When zone "b" goes down for 3 seconds
    And the target has 2 seconds to recover
    Then the "browse" journey's error rate stays below 1%
    And the "browse" journey's p95 latency stays below 300 ms
"""
TITLE = "Zone b goes down for a moment and browsing carries on"
NIGHTS = [  # night, target file, what it is
    ("2026-11-21", "local.yaml", "resilient"),
    ("2026-11-22", "local.yaml", "resilient"),
    ("2026-11-23", "local-fragile.yaml", "the negative control"),
    ("2026-11-24", "local.yaml", "resilient"),
    ("2026-11-25", "local-regression.yaml", "catalog 400 ms slower: an injected regression"),
]


def _regression_target(folder: Path) -> Path:
    """targets/local.yaml as a release that made catalog 400 ms slower."""
    text = (ROOT / "targets" / "local.yaml").read_text(encoding="utf-8")
    text = text.replace("name: local\n", "name: local-regression\n", 1)
    marker = "  catalog:\n    command: *uvicorn\n"
    assert marker in text
    text = text.replace(marker, marker + '    env: {SHAKEOUT_EXTRA_LATENCY_MS: "400"}\n', 1)
    target = folder / "local-regression.yaml"
    target.write_text(text, encoding="utf-8")
    shutil.copyfile(ROOT / "targets" / "local.slo.yaml", folder / "local.slo.yaml")
    return target


def _night(tmp_path: Path, night: str, target: Path, db: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHAKEOUT_RUNTIME_DIR": str(tmp_path / "runtime"),
        "SHAKEOUT_REPORTS_DIR": str(tmp_path / "reports"),
        "SHAKEOUT_HISTORY_DB": str(db),
        "SHAKEOUT_NIGHT": night,
        "SHAKEOUT_COMMIT": f"commit-{night}",
    }
    # `pytest steps FOLDER`: the library's wiring with the features of FOLDER (README).
    command = [sys.executable, "-m", "pytest", "steps", str(tmp_path / "features")]
    command += ["-p", "no:cacheprovider"]
    command += ["-q", "--target", str(target)]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_a_week_of_nights_makes_the_digest_its_runs_say(tmp_path: Path, no_leftovers: None) -> None:
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "probe.feature").write_text(FEATURE, encoding="utf-8")
    targets = {"local.yaml": ROOT / "targets" / "local.yaml",
               "local-fragile.yaml": ROOT / "targets" / "local-fragile.yaml",
               "local-regression.yaml": _regression_target(tmp_path)}  # fmt: skip
    db = tmp_path / "history.sqlite"
    outcomes = []
    for night, target, what in NIGHTS:
        done = _night(tmp_path, night, targets[target], db)
        assert done.returncode in (0, 1), (
            f"{night} ({what}): exit {done.returncode}\n{done.stdout[-3000:]}"
        )
        outcomes.append(done.returncode)
    # The exit codes a pipeline branches on: 0 when the drill passed, 1 on a breach.
    assert outcomes == [0, 0, 1, 0, 1], outcomes
    runs = sorted((tmp_path / "reports" / "runs").glob("*/"))
    verdicts = [json.loads((r / "verdicts.json").read_text()) for r in runs]
    assert [v["outcome"] for v in verdicts] == ["pass", "pass", "fail", "pass", "fail"]

    digest = write_digest(db, tmp_path / "weekly", nights=3, until="2026-11-25")
    (drill,) = digest.week.drills
    assert drill.title == TITLE
    assert [r.outcome for r in drill.runs] == ["fail", "pass", "fail"]
    assert [r.commit for r in drill.runs] == ["commit-2026-11-23", "commit-2026-11-24",
                                              "commit-2026-11-25"]  # fmt: skip
    assert drill.flips == 2
    assert drill.flaky
    # Each night's margins are what its verdicts.json holds: observed against threshold (a
    # failed step ends a scenario, so a failing night judged fewer objectives).
    for run, v in zip(drill.runs, verdicts[2:], strict=True):
        judged = {
            x["objective"]: x["observed"] / x["threshold"]
            for x in v["verdicts"]
            if x["kind"] in ("latency", "error_rate")
        }
        assert judged
        assert run.limit_used == pytest.approx(judged)
        assert run.recovery_s == (v.get("recovery") or {}).get("from_fault_start_s")
    worse, _ = drill.changes()
    assert "pass rate 100% -> 33%" in worse
    text = digest.markdown.read_text(encoding="utf-8")
    assert f"Flaky: {TITLE} flipped 2 times in 3 runs (pass rate 33%)." in text
    assert f"Regression: {TITLE}: pass rate 100% -> 33%." in text
    # Importing the same run folders again adds nothing: each run is recorded once.
    store = history.connect(db)
    try:
        assert history.import_runs(store, [tmp_path / "reports" / "runs"]) == (0, 5, 0)
    finally:
        store.close()
    if os.environ.get("SHAKEOUT_DOCS_SCREENSHOTS") == "1":  # docs/reports.md's example
        example = ROOT / "docs" / "weekly-example"
        shutil.rmtree(example, ignore_errors=True)
        shutil.copytree(tmp_path / "weekly", example)
