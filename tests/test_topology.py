"""Target files: valid ones load, invalid ones fail naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shakeout.contracts import BreakerSpec, PaymentsPolicy
from shakeout.errors import ConfigError
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["local.yaml", "local-fragile.yaml"])
def test_shipped_targets_are_valid(name: str) -> None:
    target = load_target(ROOT / "targets" / name)
    assert target.gateway == "gateway"
    assert set(target.services) == {"gateway", "catalog", "orders", "payments", "inventory"}
    assert target.platform.zones == ["a", "b", "c"]


def test_fragile_target_turns_the_safety_nets_off() -> None:
    fragile = load_target(ROOT / "targets" / "local-fragile.yaml").platform
    assert not fragile.health_checks
    assert not fragile.rollout.auto_rollback
    assert fragile.router.retries == 0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "target.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: target file not found"):
        load_target(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nkind: local\nservices: [unclosed\n")
    with pytest.raises(ConfigError, match=r"target\.yaml:\d+: not valid YAML"):
        load_target(path)


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: shop\n"
        "kind: local\n"
        "services:\n"
        "  gateway:\n"
        "    command: [x, '{port}']\n"
        "    replicas: -2\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_target(path)
    assert "target.yaml:6: field services.gateway.replicas" in str(caught.value)
    assert "greater than or equal to 1" in str(caught.value)


def test_unknown_placeholder_and_missing_port(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: shop\nkind: local\nservices:\n  gateway:\n    command: [x, '{prot}']\n",
    )
    with pytest.raises(ConfigError, match=r"unknown placeholder \{prot\}"):
        load_target(path)
    path = _write(tmp_path, "name: shop\nkind: local\nservices:\n  gateway:\n    command: [x]\n")
    with pytest.raises(ConfigError, match=r"must contain \{port\}"):
        load_target(path)


def test_gateway_must_be_a_service(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: shop\nkind: local\nservices:\n  web:\n    command: [x, '{port}']\n",
    )
    with pytest.raises(ConfigError, match=r"platform\.gateway names 'gateway'"):
        load_target(path)


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: shop\nkind: local\nplatform:\n  helth_checks: false\n"
        "services:\n  gateway:\n    command: [x, '{port}']\n",
    )
    with pytest.raises(ConfigError, match=r"target\.yaml:4: field platform\.helth_checks"):
        load_target(path)


def test_payments_policy_is_the_contract_the_gateway_reads() -> None:
    deps = load_target(ROOT / "targets" / "local.yaml").platform.dependencies
    assert deps.payments == PaymentsPolicy(
        timeout_ms=150,
        retries=2,
        retry_backoff_ms=20.0,
        breaker=BreakerSpec(failures=3, open_s=5.0),
        defer_on_failure=True,
    )
    assert deps.gateway_env() == {
        "SHAKEOUT_PAYMENTS_TIMEOUT_MS": "150",
        "SHAKEOUT_PAYMENTS_RETRIES": "2",
        "SHAKEOUT_PAYMENTS_RETRY_BACKOFF_MS": "20",
        "SHAKEOUT_BREAKER_FAILURES": "3",
        "SHAKEOUT_BREAKER_OPEN_S": "5",
        "SHAKEOUT_PAYMENTS_DEFER": "1",
    }
    assert PaymentsPolicy.from_env(deps.gateway_env()) == deps.payments


@pytest.mark.parametrize(
    ("payments", "line", "field", "message"),
    [
        ("{timeout_ms: 0}", 5, "payments.timeout_ms", "greater than or equal to 1"),
        ("{timeout_ms: 1.5}", 5, "payments.timeout_ms", "a valid integer"),
        ("{retries: 9}", 5, "payments.retries", "less than or equal to 5"),
        ("{retry: 1}", 5, "payments.retry", "Extra inputs are not permitted"),
        ("{breaker: {open_s: 0}}", 5, "payments.breaker.open_s", "greater than 0"),
        ("{breaker: {fails: 1}}", 5, "payments.breaker.fails", "Extra inputs are not permitted"),
        ("{breaker: 3}", 5, "payments.breaker", "instance of BreakerSpec"),
        ("nope", 5, "payments", "instance of PaymentsPolicy"),
    ],
)
def test_bad_payments_policy_names_file_line_and_field(
    tmp_path: Path, payments: str, line: int, field: str, message: str
) -> None:
    path = _write(
        tmp_path,
        "name: shop\nkind: local\nplatform:\n  dependencies:\n"
        f"    payments: {payments}\n"
        "services:\n  gateway:\n    command: [x, '{port}']\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_target(path)
    assert f"target.yaml:{line}: field platform.dependencies.{field}: " in str(caught.value)
    assert message in str(caught.value)
