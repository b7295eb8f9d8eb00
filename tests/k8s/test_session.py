"""KubernetesSession: safety checks, steady state, rollout and events through the real client."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shakeout.errors import ConfigError
from shakeout.k8s.actions import deployment, secret
from shakeout.k8s.session import KubernetesSession
from shakeout.target import load_target_file
from tests.k8s.conftest import CONTEXT, NAMESPACE, ROOT
from tests.k8s.fakeapi import FakeApiServer

KIND = ROOT / "targets" / "kubernetes" / "kind.yaml"


def target_file(tmp_path: Path, kubeconfig: Path | None = None, **cluster: object) -> Path:
    data = yaml.safe_load(KIND.read_text())
    data["cluster"].update(cluster)
    if kubeconfig is not None:
        data["cluster"]["kubeconfig"] = str(kubeconfig)
    data["slo"] = None
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_kind_target_loads_as_kubernetes() -> None:
    target = load_target_file(KIND)
    assert type(target).__name__ == "KubernetesTarget"
    assert load_target_file(ROOT / "targets" / "local.yaml").kind == "local"
    placement = target.placement()
    assert placement.replicas["gateway"] == 3
    assert placement.zones == ("a", "b", "c")


def test_context_off_the_allowlist_is_refused(tmp_path: Path) -> None:
    path = target_file(tmp_path, context="kind-other")
    with pytest.raises(ConfigError, match=r"target.yaml: field cluster.context: 'kind-other'"):
        KubernetesSession(path)


def test_namespace_off_the_allowlist_is_refused(tmp_path: Path) -> None:
    path = target_file(tmp_path, namespace="kube-system")
    with pytest.raises(ConfigError, match=r"field cluster.namespace: 'kube-system'"):
        KubernetesSession(path)


def test_production_context_needs_the_flag(tmp_path: Path, kubeconfig: Path) -> None:
    path = target_file(
        tmp_path, kubeconfig, context="eks-prod-eu", allowed_contexts=["eks-prod-eu"]
    )
    with pytest.raises(ConfigError, match=r"matches the production pattern 'prod'"):
        KubernetesSession(path)
    KubernetesSession(path, allow_production=True).close()


def _with_alerting(path: Path, **alerting: object) -> Path:
    data = yaml.safe_load(path.read_text())
    data["alerting"] = alerting
    path.write_text(yaml.safe_dump(data))
    return path


def test_alerting_urls_are_held_to_the_production_patterns(
    tmp_path: Path, kubeconfig: Path
) -> None:
    path = _with_alerting(
        target_file(tmp_path, kubeconfig),
        prometheus_url="http://prometheus.prod.example:9090",
        alertmanager_url="http://alertmanager.monitoring:9093",
    )
    with pytest.raises(ConfigError, match=r"field alerting.prometheus_url: .* 'prod'"):
        KubernetesSession(path)
    with KubernetesSession(path, allow_production=True) as session:
        source = session.alerting()
        assert not isinstance(source, str)
        assert source.prometheus_url == "http://prometheus.prod.example:9090"
        assert source.alertmanager_url == "http://alertmanager.monitoring:9093"


def test_without_alerting_the_alert_steps_are_told_why(tmp_path: Path, kubeconfig: Path) -> None:
    with KubernetesSession(target_file(tmp_path, kubeconfig)) as session:
        reason = session.alerting()
    assert isinstance(reason, str)
    assert "no alerting.prometheus_url" in reason
    bad = _with_alerting(target_file(tmp_path, kubeconfig), prometheus_url="prometheus:9090")
    with pytest.raises(ConfigError, match=r"must start with http:// or https://"):
        KubernetesSession(bad)


def test_session_reads_steady_state_rollout_and_events(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    path = target_file(tmp_path, kubeconfig)
    conf = {"shakeout_namespace": NAMESPACE}
    with KubernetesSession(path) as session:
        assert session.chaos_environment()["KUBERNETES_CONTEXT"] == CONTEXT
        assert session.chaos_configuration()["shakeout_namespace"] == NAMESPACE
        assert session.steady_state()[0] is True
        assert session.rollout("orders") == {**session.rollout("orders"), "status": "available"}  # type: ignore[dict-item]
        first = session.events(0)
        assert first
        assert [e["seq"] for e in first] == list(range(1, len(first) + 1))
        deployment.set_deployment_env("orders", {"SHAKEOUT_CRASH_ON_START": "1"}, "v2", conf)
        ok, why = session.steady_state()
        assert ok is False
        assert "orders" in why
        rollout = session.rollout("orders")
        assert rollout is not None
        assert rollout["status"] == "failed"
        assert rollout["version"] == "v2"
        later = session.events(first[-1]["seq"])
        assert any(e["kind"] == "BackOff" for e in later)
        assert all(e["seq"] > first[-1]["seq"] for e in later)
        deployment.restore_deployment_env("orders", conf)
        assert session.steady_state()[0] is True
        # The fake serves no port-forward: the session reports kubectl's failure by field.
        with pytest.raises(ConfigError, match=r"field gateway.port_forward: kubectl"):
            _ = session.gateway_url
        assert session.fault_skip_reason(ROOT / "scenarios/kubernetes/zone_freeze.json") is not None
        assert session.fault_skip_reason(ROOT / "scenarios/kubernetes/scale.json") is None


def test_rollbacks_undo_a_fault_left_by_an_aborted_run(
    fake: FakeApiServer, kubeconfig: Path
) -> None:
    conf = {"shakeout_namespace": NAMESPACE}
    deployment.deploy_canary("catalog", "v2", 0.2, {"SHAKEOUT_ERROR_RATE": "1"}, conf)
    deployment.remember_replicas("gateway", conf)
    secret.secret_store_down(conf)
    assert (NAMESPACE, "catalog-canary") in fake.cluster.deployments
    assert (NAMESPACE, "shakeout-shared-key") not in fake.cluster.secrets
    for _ in range(2):  # twice: every rollback is idempotent
        deployment.delete_canary("catalog", conf)
        deployment.restore_replicas("gateway", conf)
        secret.secret_store_up(conf)
    assert (NAMESPACE, "catalog-canary") not in fake.cluster.deployments
    assert (NAMESPACE, "shakeout-shared-key") in fake.cluster.secrets
    assert not fake.cluster.deployments[(NAMESPACE, "gateway")]["metadata"].get("annotations")


def test_cleanup_opens_a_kubernetes_target_through_its_safety_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shakeout cleanup` works for a cluster target too: it opens the target's session (no
    longer local-only), so a context off the allowlist is refused before any rollback runs."""
    from shakeout import cli
    from shakeout.chaos import undo

    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(tmp_path / "runtime"))
    path = target_file(tmp_path, context="kind-other")
    name = yaml.safe_load(path.read_text())["name"]
    undo.write_record(name, ROOT / "scenarios" / "kubernetes" / "scale.json", {})
    assert cli.main(["cleanup", "--target", str(path), "--force"]) == 2
    error = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
    assert "field cluster.context: 'kind-other' is not in cluster.allowed_contexts" in error
    assert len(undo.pending(name, include_live=True)) == 1  # nothing was played
