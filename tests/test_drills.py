"""The drills end to end, as a user runs them: ``pytest steps --target FILE`` in its own process.

Each drill passes against the resilient platform and fails, naming the broken SLO, against its
fragile variant (the negative control). Interrupting or killing a drill in the middle of a
fault still plays the fault's rollback and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shakeout._process import wait_for
from shakeout.chaos import undo
from shakeout.observability.prometheus import INSTALL_HINT, find_binaries
from shakeout.platform import lifecycle, network
from shakeout.platform.state import PlatformState

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "targets"

pytestmark = pytest.mark.drill


def _drill_command(target: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "steps",
        "--target",
        str(target),
        "-p",
        "no:cacheprovider",
        "-q",
        *extra,
    ]


# A foreground process in a terminal has SIGINT and SIGQUIT at their defaults, so Ctrl-C
# raises KeyboardInterrupt in Python. A process started from a job that ignores them (`cmd &`
# in a script, nohup, some CI runners) inherits SIG_IGN, and Python then installs no
# KeyboardInterrupt handler at all: a Ctrl-C test started from there would send a signal the
# drill never sees. Start the drill as a terminal would, whatever launched this suite.
_AS_IN_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGQUIT, signal.SIG_DFL)\n"
    "os.execv(sys.argv[1], sys.argv[1:])",
]


def _interactive_drill(tmp_path: Path, target: Path, *extra: str) -> subprocess.Popen[str]:
    """A drill in its own session (its own process group, as a terminal's foreground job),
    with a terminal's signal dispositions; its output is kept in ``drill.out``."""
    with (tmp_path / "drill.out").open("w", encoding="utf-8") as out:
        return subprocess.Popen(
            [*_AS_IN_A_TERMINAL, *_drill_command(target, *extra)],
            cwd=ROOT,
            env=_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def _drill_output(tmp_path: Path) -> str:
    return (tmp_path / "drill.out").read_text(encoding="utf-8", errors="replace")


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHAKEOUT_RUNTIME_DIR": str(tmp_path / "runtime"),
        "SHAKEOUT_REPORTS_DIR": str(tmp_path / "reports"),
    }


def _run_drill(
    tmp_path: Path, target: Path, *extra: str, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _drill_command(target, *extra),
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _run_tmp_feature(
    tmp_path: Path, feature: str, target: Path, timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run one feature written to a temporary folder with the step library, as a user would."""
    features = tmp_path / "features"
    features.mkdir()
    (features / "tmp.feature").write_text(feature, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["steps.plugin", "steps.drill_steps"]\n', encoding="utf-8"
    )
    (tmp_path / "test_tmp.py").write_text(
        "from pytest_bdd import scenarios\n\nscenarios('features')\n", encoding="utf-8"
    )
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-q"]
    command += ["--rootdir", str(tmp_path), "--target", str(target)]
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**_env(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# The scenario library, by feature tag: how many scenarios each feature has. Every scenario
# passes on the resilient platform and fails, as an SLO breach, on the fragile one.
LIBRARY = [
    ("crash_loop", 1),
    ("zone", 2),
    ("canary", 3),
    ("secrets", 2),
    ("dependency", 2),
    ("scale", 2),
    ("capacity", 2),
    ("config", 2),
    ("data", 1),
    ("drain", 1),
    ("registry", 1),
    ("network", 1),
]


def test_every_feature_of_the_library_is_paired_here() -> None:
    tags = set()
    for feature in (ROOT / "features").glob("*.feature"):
        first = feature.read_text(encoding="utf-8").splitlines()[0]
        tags |= {t[1:] for t in first.split() if t.startswith("@")}
    assert {tag for tag, _ in LIBRARY} <= tags
    assert len(list((ROOT / "features").glob("*.feature"))) == len(LIBRARY)


SCENARIOS = sum(count for _, count in LIBRARY)
# Scenarios whose fault needs nftables and root (packet loss): skipped, saying so, without.
NFTABLES_SCENARIOS = 1
NFTABLES_MISSING = network.unavailable()
RUNNABLE = SCENARIOS - (NFTABLES_SCENARIOS if NFTABLES_MISSING else 0)
# Scenarios that assert on alerts (crash loop, both zones, both dependency drills, both
# configs, the good canary).
ALERT_SCENARIOS = 8


def test_the_alert_scenarios_are_counted_here() -> None:
    text = "\n".join(f.read_text(encoding="utf-8") for f in (ROOT / "features").glob("*.feature"))
    blocks = text.split("Scenario")[1:]
    with_alerts = [b for b in blocks if " alert " in b]
    zone_examples = 1  # the zone outline runs twice (goes down, freezes)
    assert len(with_alerts) + zone_examples == ALERT_SCENARIOS


# The whole library in one session, as `tox -e drill` runs it: scenarios share the platform
# one after another, so each must leave it as it found it. One session per platform instead of
# one per feature also spares the suite a pytest start and a platform start per feature.
LIBRARY_TIMEOUT_S = 1200


def _outcomes(tmp_path: Path) -> dict[str, str]:
    """Each drill's outcome (``verdicts.json``), by drill name."""
    found = {}
    for run in sorted((tmp_path / "reports" / "runs").iterdir()):
        verdicts = json.loads((run / "verdicts.json").read_text(encoding="utf-8"))
        found[verdicts["drill"]] = verdicts["outcome"]
    return found


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-4000:] + result.stderr[-2000:]


def _why(tmp_path: Path, drills: dict[str, str]) -> str:
    """The failing verdicts and the error of each drill named, from its ``verdicts.json``."""
    lines = []
    for run in sorted((tmp_path / "reports" / "runs").iterdir()):
        verdicts = json.loads((run / "verdicts.json").read_text(encoding="utf-8"))
        if verdicts["drill"] not in drills:
            continue
        lines.append(f"{verdicts['drill']}: {verdicts['outcome']} ({verdicts['error']})")
        bad = [v for v in verdicts["verdicts"] if v["status"] != "pass"]
        lines += [f"  {v['status']}: {v['message']}" for v in bad]
    return "\n".join(lines)


def test_the_library_passes_on_the_resilient_platform(tmp_path: Path, no_leftovers: None) -> None:
    allure_dir = tmp_path / "allure"
    result = _run_drill(
        tmp_path, TARGETS / "local.yaml", "--alluredir", str(allure_dir),
        timeout_s=LIBRARY_TIMEOUT_S,
    )  # fmt: skip
    outcomes = _outcomes(tmp_path)
    expected = "pass"
    passed, skipped = RUNNABLE, SCENARIOS - RUNNABLE  # no nftables: the packet-loss drill skips
    if find_binaries() is None:  # the alert steps skip, saying so; their drills cannot pass
        passed, skipped = passed - ALERT_SCENARIOS, skipped + ALERT_SCENARIOS
        for run in (tmp_path / "reports" / "runs").iterdir():
            verdicts = json.loads((run / "verdicts.json").read_text(encoding="utf-8"))
            if verdicts["outcome"] == "inconclusive":
                assert INSTALL_HINT in verdicts["skipped"], verdicts
        expected = "pass or inconclusive"
    summary = f"{passed} passed" + (f", {skipped} skipped" if skipped else "")
    assert summary in result.stdout, _tail(result)
    failed = {d: o for d, o in outcomes.items() if o not in expected.split(" or ")}
    assert result.returncode == 0, f"not passed:\n{_why(tmp_path, failed)}\n{_tail(result)}"
    assert len(outcomes) == RUNNABLE
    assert not failed
    assert len(list(allure_dir.glob("*-result.json"))) == SCENARIOS
    for run_dir in (tmp_path / "reports" / "runs").iterdir():
        assert (run_dir / "requests.tsv").stat().st_size > 0
        assert (run_dir / "timeseries.json").is_file()
        assert (run_dir / "chart.png").stat().st_size > 0
        assert (run_dir / "verdicts.html").is_file()


def test_the_library_fails_on_the_fragile_platform(tmp_path: Path, no_leftovers: None) -> None:
    """The negative control: every scenario against the fragile platform fails, each as an SLO
    breach naming what broke (not as a harness error)."""
    result = _run_drill(tmp_path, TARGETS / "local-fragile.yaml", timeout_s=LIBRARY_TIMEOUT_S)
    outcomes = _outcomes(tmp_path)
    not_failed = {drill: outcome for drill, outcome in outcomes.items() if outcome != "fail"}
    assert result.returncode == 1, _tail(result)
    assert not not_failed, f"not failed on the fragile platform: {not_failed}\n{_tail(result)}"
    assert len(outcomes) == RUNNABLE
    skipped = f", {SCENARIOS - RUNNABLE} skipped" if NFTABLES_MISSING else ""
    assert f"{RUNNABLE} failed{skipped}" in result.stdout, _tail(result)
    assert result.stdout.count("shakeout.errors.SLOBreach: ") == RUNNABLE, _tail(result)
    breaches = [ln for ln in result.stdout.splitlines() if "SLO breached: " in ln]
    assert breaches, _tail(result)
    for line in breaches:
        assert "observed " in line, line


@pytest.fixture
def fragile_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlatformState]:
    """A fragile platform owned by the test: only the fault's own rollback can undo the fault."""
    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(tmp_path / "runtime"))
    state, _ = lifecycle.up(TARGETS / "local-fragile.yaml", owner_pid=os.getpid())
    try:
        yield state
    finally:
        lifecycle.down(state.target)


def _assert_in_fault(in_fault: bool, drill: subprocess.Popen[str], tmp_path: Path) -> None:
    if not in_fault or drill.poll() is not None:
        pytest.fail(
            f"the drill never injected its fault (exit code {drill.poll()}); its output:\n"
            + _drill_output(tmp_path)[-3000:]
        )


def _interrupt_mid_fault(
    tmp_path: Path, platform: PlatformState, sig: int, whole_group: bool
) -> tuple[int, str]:
    drill = _interactive_drill(tmp_path, TARGETS / "local-fragile.yaml", "-k", "crash")
    with lifecycle.PlatformClient(platform) as client:
        try:
            in_fault = wait_for(
                lambda: (
                    drill.poll() is not None
                    or any(r["version"] == "v2-crashloop" for r in client.replicas())
                ),
                60,
            )
            _assert_in_fault(in_fault, drill, tmp_path)
            if whole_group:
                os.killpg(drill.pid, sig)  # what a terminal's Ctrl-C does
            else:
                os.kill(drill.pid, sig)
            drill.wait(timeout=60)
        finally:
            if drill.poll() is None:
                drill.kill()
                drill.wait()

        def rolled_back() -> bool:
            return not any(r["version"] == "v2-crashloop" for r in client.replicas())

        assert wait_for(rolled_back, 30), "the fault was left behind"
        rollout = client.status()["services"]["orders"]["rollout"]
    assert rollout["status"] == "rolled_back"
    return drill.returncode, _drill_output(tmp_path)


def test_ctrl_c_mid_fault_plays_the_rollback(
    tmp_path: Path, no_leftovers: None, fragile_platform: PlatformState
) -> None:
    code, output = _interrupt_mid_fault(tmp_path, fragile_platform, signal.SIGINT, True)
    assert code != 0
    assert "KeyboardInterrupt" in output or "Interrupted" in output, output[-2000:]


def test_killed_harness_mid_fault_still_plays_the_rollback(
    tmp_path: Path, no_leftovers: None, fragile_platform: PlatformState
) -> None:
    code, _ = _interrupt_mid_fault(tmp_path, fragile_platform, signal.SIGKILL, False)
    assert code == -signal.SIGKILL


def test_unknown_step_fails_before_anything_starts(tmp_path: Path, no_leftovers: None) -> None:
    result = _run_tmp_feature(
        tmp_path,
        "Feature: typo\n"
        "  Scenario: a step nobody defined\n"
        "    Given the target is up and every replica is ready\n"
        "    When zone q is struck by lightning\n",
        TARGETS / "local.yaml",
    )
    assert result.returncode == 4, result.stdout[-2000:]
    assert "tmp.feature:4: no step definition matches When 'zone q is struck by lightning'" in (
        result.stdout
    )
    assert not (tmp_path / "runtime").exists(), "the platform was started for a broken feature"


def test_cleanup_finishes_the_rollback_of_a_run_killed_outright(
    tmp_path: Path, no_leftovers: None, fragile_platform: PlatformState
) -> None:
    # Everything dies at once (the harness, its guard, `chaos run`): nobody rolls back.
    drill = _interactive_drill(tmp_path, TARGETS / "local-fragile.yaml", "-k", "crash")
    with lifecycle.PlatformClient(fragile_platform) as client:

        def bad_release_live() -> bool:
            return any(r["version"] == "v2-crashloop" for r in client.replicas())

        try:
            in_fault = wait_for(lambda: drill.poll() is not None or bad_release_live(), 60)
            _assert_in_fault(in_fault, drill, tmp_path)
            # `chaos run` lives in its own session and rolls back within ~30 ms of its guard
            # dying: kill it first, then the harness and its guard.
            killed = chaos_pids(tmp_path / "runtime")
            assert killed, "no `chaos run` process found to kill"
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(drill.pid, signal.SIGKILL)
            drill.wait(timeout=30)
        assert wait_for(lambda: not shakeout_chaos_running(), 10)
        events = [(round(e["t"], 2), e["kind"], e.get("reason")) for e in client.events()]
        assert bad_release_live(), (
            f"the fault should still be there; chaos pids killed: {killed}; events: {events[-4:]}"
        )
        assert len(undo.pending(fragile_platform.target)) == 1

        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "shakeout.cli",
                "cleanup",
                "--target",
                str(TARGETS / "local-fragile.yaml"),
            ],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "steady state met" in result.stdout
        assert not bad_release_live()
        assert undo.pending(fragile_platform.target, include_live=True) == []


def chaos_pids(runtime: Path | None = None) -> list[int]:
    """Pids of this test session's `chaos run` processes (not their guards), read from /proc
    (full argv and environment, whatever the width `ps` would print); with ``runtime``, only
    those working on the platforms of that runtime folder."""
    markers = [f"SHAKEOUT_TEST_SESSION={os.environ['SHAKEOUT_TEST_SESSION']}".encode()]
    if runtime is not None:
        markers.append(f"SHAKEOUT_RUNTIME_DIR={runtime}".encode())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        is_chaos = b"--no-version-check" in argv and any(a.endswith(b"chaos") for a in argv)
        guard = b"shakeout.chaos._guard" in argv
        if is_chaos and not guard and all(marker in environ for marker in markers):
            pids.append(int(proc.name))
    return pids


def shakeout_chaos_running() -> bool:
    """True while a `chaos run` process exists."""
    return bool(chaos_pids())


def test_stop_condition_aborts_the_fault_and_rolls_it_back(
    tmp_path: Path, no_leftovers: None, fragile_platform: PlatformState
) -> None:
    result = _run_tmp_feature(
        tmp_path,
        "Feature: stop condition\n"
        "  Scenario: a bad release under a stop condition\n"
        "    Given the target is up and every replica is ready\n"
        '    And load of 40 requests per second from the "steady" profile\n'
        "    And any fault is aborted if the error rate exceeds 10% over 2 seconds\n"
        "    And a baseline of 2 seconds\n"
        '    When a release of "orders" that crashes on start takes 50% of traffic\n'
        '    Then the "checkout" journey\'s error rate stays below 1%\n',
        TARGETS / "local-fragile.yaml",
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "aborted by stop condition: error rate" in result.stdout, result.stdout[-3000:]
    with lifecycle.PlatformClient(fragile_platform) as client:
        assert not any(r["version"] == "v2-crashloop" for r in client.replicas())
        assert client.status()["services"]["orders"]["rollout"]["status"] == "rolled_back"
    (summary,) = (tmp_path / "reports" / "runs").glob("*/summary.json")
    fault = json.loads(summary.read_text(encoding="utf-8"))["faults"][0]
    assert fault["abort_reason"].startswith("error rate")
    assert fault["rolled_back_at"] - fault["aborted_at"] < 2.0


def test_dry_run_on_the_kubernetes_target_resolves_its_own_experiments(
    tmp_path: Path, no_leftovers: None
) -> None:
    result = _run_drill(
        tmp_path, TARGETS / "kubernetes" / "kind.yaml", "--dry-run", "-m", "zone", "-rs"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "scenarios/kubernetes/zone_outage.json" in result.stdout
    assert "reaches 5 of 12 replicas, every service's share in zone b" in result.stdout


def test_kubernetes_production_context_is_refused_before_anything_runs(
    tmp_path: Path, no_leftovers: None
) -> None:
    target = (TARGETS / "kubernetes" / "kind.yaml").read_text(encoding="utf-8")
    target = target.replace("context: kind-shakeout", "context: prod-eu-1")
    target = target.replace("allowed_contexts: [kind-shakeout", "allowed_contexts: [prod-eu-1")
    target = target.replace("slo: ../local.slo.yaml", f"slo: {TARGETS / 'local.slo.yaml'}")
    path = tmp_path / "prod.yaml"
    path.write_text(target, encoding="utf-8")
    result = _run_drill(tmp_path, path, "-k", "crash")
    assert result.returncode != 0
    assert "field cluster.context: 'prod-eu-1' matches the production pattern" in result.stdout
    assert "--allow-production" in result.stdout
    assert not (tmp_path / "reports" / "runs").exists()  # no drill began
