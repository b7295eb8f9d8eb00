"""One check before anything runs (issue 14): every mistake a new user made, caught with its
message (file, line, field, the nearest valid name) before a platform, load or fault starts.

The CLI cases run ``shakeout`` in this process (nothing can start: no runtime folder appears);
the pytest cases run ``pytest steps`` in a subprocess and show it refused before the platform.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from shakeout import cli, profiles
from shakeout.check import check_run
from shakeout.errors import ConfigError
from shakeout.load import LoadSpec
from shakeout.loadworker.shapes import OPTIONS
from shakeout.vocabulary import SHAPE_SETTINGS, shape_settings

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "targets" / "local.yaml"
KIND = ROOT / "targets" / "kubernetes" / "kind.yaml"

GOOD = (
    "@brownout\n"
    "Feature: x\n"
    "  Scenario: one drill\n"
    "    Given the target is up and every replica is ready\n"
    '    And load of 20 requests per second from the "steady" profile\n'
    '    When zone "b" goes down for 5 seconds\n'
    "    And the target has 3 seconds to recover\n"
    '    Then the "checkout" journey\'s error rate stays below 1%\n'
    '    And during the fault the "browse" journey\'s error rate stays below 1%\n'
)


@pytest.fixture(autouse=True)
def _nothing_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.chdir(ROOT)


def _feature(tmp_path: Path, text: str = GOOD, name: str = "x.feature") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _target_file(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _prod_target(tmp_path: Path) -> tuple[Path, str]:
    """The kind target pointed at a context named like production (and allowed)."""
    text = KIND.read_text(encoding="utf-8").replace("context: kind-shakeout", "context: prod-eu-1")
    text = text.replace("allowed_contexts: [kind-shakeout", "allowed_contexts: [prod-eu-1")
    text = text.replace("slo: ../local.slo.yaml", f"slo: {ROOT / 'targets' / 'local.slo.yaml'}")
    return _target_file(tmp_path, text, "prod.yaml"), text


def _refused(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    return " ".join(err.split())


def _nothing_started(tmp_path: Path) -> None:
    assert not (tmp_path / "runtime").exists(), "a platform was started"


def test_the_library_checks_clean_on_every_target() -> None:
    features = sorted((ROOT / "features").glob("*.feature"))
    for target in (LOCAL, ROOT / "targets" / "local-fragile.yaml", KIND):
        report = check_run(target, features)
        assert len(report.plans) >= len(features), target


def test_an_unknown_profile_is_refused_with_the_nearest_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feature = _feature(tmp_path, GOOD.replace('"steady" profile', '"stedy" profile'))
    err = _refused("validate", str(feature), capsys=capsys)
    assert "x.feature:5: unknown load profile 'stedy'" in err
    assert "did you mean 'steady'?" in err
    _nothing_started(tmp_path)


def test_a_misspelt_journey_is_refused_with_the_profiles_journeys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feature = _feature(tmp_path, GOOD.replace('"checkout" journey', '"chekout" journey'))
    err = _refused("plan", str(feature), capsys=capsys)
    assert (
        "x.feature:8: journey 'chekout' is not run by the 'steady' profile (its journeys: "
        "browse, cart, checkout, product); did you mean 'checkout'?"
    ) in err
    _nothing_started(tmp_path)


def test_an_unknown_phase_and_a_phase_without_a_fault_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace("during the fault", "during the faults")
    err = _refused("validate", str(_feature(tmp_path, text)), capsys=capsys)
    assert "x.feature:9: unknown phase 'faults'" in err
    assert "did you mean 'fault'?" in err
    text = GOOD.replace('    When zone "b" goes down for 5 seconds\n', "")
    err = _refused("validate", str(_feature(tmp_path, text)), capsys=capsys)
    assert "the fault phase needs a fault step in the scenario" in err


def test_unknown_shape_settings_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace('"steady" profile', '"spike" profile, with at 5 s, windw 3 s')
    err = _refused("validate", str(_feature(tmp_path, text)), capsys=capsys)
    assert "x.feature:5: unknown shape setting 'windw'" in err
    assert "did you mean 'window'?" in err


def test_a_fault_word_mapped_to_a_missing_experiment_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "t.yaml"
    text = LOCAL.read_text(encoding="utf-8").replace("slo: local.slo.yaml", "")
    target.write_text(
        text + "\nfaults:\n  zone-outage: scenarios/nope.json\n  zone-outgae: x.json\n",
        encoding="utf-8",
    )
    err = _refused("validate", str(target), capsys=capsys)
    assert "t.yaml: field faults.zone-outage: experiment file scenarios/nope.json not found" in err
    assert "field faults.zone-outgae: no fault word 'zone-outgae'" in err
    assert "did you mean 'zone-outage'?" in err


def test_validate_refuses_a_target_whose_slo_file_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slo = tmp_path / "bad.slo.yaml"
    slo.write_text("error_rate:\n  - {journey: checkout, below_pct: -5}\n", encoding="utf-8")
    target = tmp_path / "t.yaml"
    text = LOCAL.read_text(encoding="utf-8").replace("slo: local.slo.yaml", f"slo: {slo}")
    target.write_text(text, encoding="utf-8")
    err = _refused("validate", str(target), capsys=capsys)
    assert "bad.slo.yaml:2: field error_rate[0].below_pct: Input should be greater than 0" in err
    # Given alone, the SLO file is read as an SLO file (not as a target).
    err = _refused("validate", str(slo), capsys=capsys)
    assert "invalid SLO file" in err
    assert "below_pct" in err


def test_validate_reads_an_slo_file_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(ROOT / "targets" / "local.slo.yaml")]) == 0
    assert "local.slo.yaml: ok (SLO file," in capsys.readouterr().out


def test_a_missing_service_command_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _target_file(
        tmp_path,
        "name: mine\nkind: local\nplatform: {gateway: web}\nservices:\n"
        "  web: {command: [.venv/bin/mysrv, --port, '{port}']}\n",
    )
    err = _refused("validate", str(target), capsys=capsys)
    assert "field services.web.command[0]: '.venv/bin/mysrv' not found" in err


def test_plan_and_dry_run_evaluate_the_kubernetes_allowlists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, text = _prod_target(tmp_path)
    feature = _feature(tmp_path)
    err = _refused("plan", "--target", str(target), str(feature), capsys=capsys)
    assert "field cluster.context: 'prod-eu-1' matches the production pattern 'prod'" in err
    assert cli.main(["plan", "--target", str(target), "--allow-production", str(feature)]) == 0
    off_list = text.replace("allowed_contexts: [prod-eu-1", "allowed_contexts: [kind-x")
    target.write_text(off_list, encoding="utf-8")
    err = _refused("plan", "--target", str(target), str(feature), capsys=capsys)
    assert "field cluster.context: 'prod-eu-1' is not in cluster.allowed_contexts" in err


def test_data_checks_on_a_target_without_orders_are_refused(tmp_path: Path) -> None:
    target = _target_file(
        tmp_path,
        "name: mine\nkind: local\nplatform: {gateway: web}\nslo: s.yaml\nservices:\n"
        "  web: {command: ['{python}', -m, http.server, '{port}']}\n",
    )
    (tmp_path / "s.yaml").write_text("lost_orders: 0\n", encoding="utf-8")
    text = GOOD.replace('Then the "checkout"', "Then no acknowledged order is lost or duplicated\n"
                        '    And the "checkout"')  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        check_run(target, [_feature(tmp_path, text)])
    message = str(caught.value)
    assert "s.yaml: field lost_orders/rpo_s: data objectives need an order store" in message
    assert "x.feature:8: the data check needs an orders service" in message


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    text = GOOD.replace('"steady" profile', '"stedy" profile').replace("faul", "fual")
    with pytest.raises(ConfigError, match=r"^2 problems found before anything started"):
        check_run(LOCAL, [_feature(tmp_path, text)])


def test_profiles_beside_a_feature_come_first(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    mine = tmp_path / "profiles" / "steady.py"
    mine.write_text(
        "from shakeout.loadworker.users import ShakeoutUser\n\n"
        "def ping(user, context):\n    user.client.get('/', name='ping', context=context)\n\n"
        "class Pinger(ShakeoutUser):\n    journeys = [(1, ping)]\n",
        encoding="utf-8",
    )
    feature = _feature(tmp_path)
    assert profiles.resolve("steady", profiles.search_path(feature)) == mine
    assert profiles.journeys(mine) == ["ping"]
    with pytest.raises(ConfigError, match=r"journey 'checkout' is not run by the 'steady'"):
        check_run(LOCAL, [feature])


def test_platform_status_fits_80_columns() -> None:
    replica = {"zone": "c", "state": "crash-looping (frozen)", "ready": False, "restarts": 12}
    status = {
        "services": {
            "orders": {
                "url": "http://127.0.0.1:45678",
                "weights": {"v1": 0.8, "v2-crashloop": 0.2},
                "rollout": {"version": "v2-crashloop", "status": "progressing"},
                "replicas": [
                    {
                        **replica,
                        "id": "orders-v2-crashloop-12",
                        "version": "v2-crashloop",
                        "port": 65535,
                    },
                ],
            }
        }
    }
    console = Console(width=80, record=True, color_system=None)
    for table in cli.status_tables(status):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "orders-v2-crashloop-12" in text
    assert "65535" in text


def _pytest_steps(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHAKEOUT_RUNTIME_DIR": str(tmp_path / "runtime"),
        "SHAKEOUT_REPORTS_DIR": str(tmp_path / "reports"),
    }
    command = [sys.executable, "-m", "pytest", "steps", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_pytest_steps_refuses_every_mistake_before_the_platform_starts(tmp_path: Path) -> None:
    text = GOOD.replace('"checkout" journey', '"chekout" journey')
    text += "  Scenario: a typo in a step\n    Given the target is up and every replica is redy\n"
    feature = _feature(tmp_path, text, "mine.feature")
    result = _pytest_steps(tmp_path, str(feature), "--target", str(LOCAL))
    assert result.returncode == 4, result.stdout[-3000:]
    assert "journey 'chekout' is not run by the 'steady' profile" in result.stdout
    assert "mine.feature:11: no step definition matches Given 'the target is up and every " in (
        result.stdout
    )
    assert not (tmp_path / "runtime").exists()
    assert not (tmp_path / "reports" / "runs").exists()


def test_features_from_anywhere_with_unregistered_tags_are_collected(tmp_path: Path) -> None:
    (tmp_path / "drills").mkdir()
    _feature(tmp_path / "drills")
    result = _pytest_steps(tmp_path, str(tmp_path / "drills"), "--collect-only", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "x.feature::test_one_drill" in result.stdout
    assert "test_a_crashlooping" not in result.stdout  # the library is left out
    selected = _pytest_steps(tmp_path, str(tmp_path / "drills"), "--collect-only", "-m", "brownout")
    assert "1 test collected" in selected.stdout


def test_a_misspelt_target_field_is_named_with_the_nearest_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _target_file(
        tmp_path,
        "name: shop\nkind: local\nplatform:\n  router: {retrys: 1}\nservices:\n  gateway:\n"
        "    command: [x, '{port}']\n    helth: {ready: /x}\n",
    )
    err = _refused("validate", str(target), capsys=capsys)
    assert (
        "t.yaml:4: field platform.router.retrys: Extra inputs are not permitted; did you "
        "mean 'retries'?"
    ) in err
    assert (
        "t.yaml:8: field services.gateway.helth: Extra inputs are not permitted; did you "
        "mean 'health'?"
    ) in err


def test_a_missing_gateway_names_the_field_and_the_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _target_file(
        tmp_path,
        "name: mine\nkind: local\nservices:\n  httpbin: {command: [x, '{port}']}\n",
    )
    err = _refused("validate", str(target), capsys=capsys)
    assert (
        "platform.gateway names 'gateway', which is not in services: it is the service that "
        "load and checks go to (through the router), default 'gateway'; services here: httpbin"
    ) in err


def test_shape_settings_of_a_feature_reach_the_profiles_options() -> None:
    settings = shape_settings("at 5 s, window 3 s and factor 3")
    assert settings == {"at_s": 5.0, "window_s": 3.0, "factor": 3.0}
    spec = LoadSpec(ROOT / "loadprofiles" / "spike.py", 20.0, shape_options=tuple(settings.items()))
    env = spec.environment()
    envs = {option.env for option in OPTIONS}
    for name in ("SHAKEOUT_AT_S", "SHAKEOUT_WINDOW_S", "SHAKEOUT_FACTOR"):
        assert name in envs, name  # the variable a profile's option reads
    assert (env["SHAKEOUT_AT_S"], env["SHAKEOUT_WINDOW_S"], env["SHAKEOUT_FACTOR"]) == (
        "5.0",
        "3.0",
        "3.0",
    )
    for word, (option, _seconds) in SHAPE_SETTINGS.items():
        assert f"SHAKEOUT_{option.upper()}" in envs, word


def test_a_scenario_its_own_test_module_binds_runs_once(tmp_path: Path) -> None:
    (tmp_path / "features").mkdir()
    _feature(tmp_path / "features")
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["steps.plugin", "steps.drill_steps"]\n', encoding="utf-8"
    )
    (tmp_path / "test_mine.py").write_text(
        "from pytest_bdd import scenarios\n\nscenarios('features')\n", encoding="utf-8"
    )
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-q"]
    command += ["--rootdir", str(tmp_path), "--collect-only"]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "test_mine.py::test_one_drill" in result.stdout
    assert "x.feature::" not in result.stdout
    assert "1/2 tests collected (1 deselected)" in result.stdout


def test_dry_run_evaluates_the_kubernetes_allowlists(tmp_path: Path) -> None:
    target, _ = _prod_target(tmp_path)
    result = _pytest_steps(tmp_path, "--target", str(target), "--dry-run", "-m", "zone")
    assert result.returncode == 4, result.stdout[-3000:]
    assert "field cluster.context: 'prod-eu-1' matches the production pattern 'prod'" in (
        result.stdout
    )
    allowed = _pytest_steps(
        tmp_path, "--target", str(target), "--dry-run", "-m", "zone", "--allow-production"
    )
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert "dry run of" in allowed.stdout


def test_alerting_mistakes_are_named_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "targets" / "local.slo.yaml", tmp_path / "local.slo.yaml")
    text = (ROOT / "targets" / "local.yaml").read_text(encoding="utf-8")
    text = text.replace("      - CartErrorBudgetBurn", "      - CartBurn")
    text = text.replace("    rules: slo ", "    rules: none.yml ")
    target = _target_file(tmp_path, text.replace("alertmanager: generated", "alertmanager: am.yml"))
    err = _refused("validate", str(target), capsys=capsys)
    assert "field platform.observability.rules: cannot read " in err
    assert "field platform.observability.alertmanager: no file " in err
    generated = _target_file(tmp_path, text.replace("    rules: none.yml ", "    rules: slo "))
    err = _refused("validate", str(generated), capsys=capsys)
    assert "field platform.rollout.rollback_on_alerts: no alert rule 'CartBurn'" in err
