"""Every manifest of targets/kubernetes validates against the Kubernetes OpenAPI schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from shakeout.k8s.actions.job import migration_job
from shakeout.k8s.locust import render_locust_manifests
from shakeout.load import LoadSpec
from shakeout.services.flags import DEFAULTS, parse_config, validate_flags
from tests.k8s.conftest import ROOT

K8S_VERSION = "1.30.0"
MANIFESTS = sorted(
    p
    for p in (ROOT / "targets" / "kubernetes").rglob("*.yaml")
    if p.parent.name in ("base", "kind") and p.name != "kustomization.yaml"
)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_validates(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_deployment_is_spread_probed_and_bounded() -> None:
    kinds: dict[str, set[str]] = {}
    for path in MANIFESTS:
        for doc in _docs(path):
            kinds.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
            if doc["kind"] != "Deployment":
                continue
            pod = doc["spec"]["template"]["spec"]
            keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
            assert "topology.kubernetes.io/zone" in keys
            container = pod["containers"][0]
            assert container["readinessProbe"]
            assert container["livenessProbe"]
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]
            secret = next(v for v in pod["volumes"] if "secret" in v)
            mount = next(m for m in container["volumeMounts"] if m["name"] == secret["name"])
            assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
            config = next(v for v in pod["volumes"] if "configMap" in v)
            assert config["configMap"]["name"] == "shakeout-config"
            mount = next(m for m in container["volumeMounts"] if m["name"] == config["name"])
            assert "subPath" not in mount, "a subPath mount never sees a changed ConfigMap"
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["SHAKEOUT_CONFIG_FILE"] == mount["mountPath"] + "/config.json"
    assert kinds["Deployment"] == kinds["Service"] == kinds["PodDisruptionBudget"]
    assert "HorizontalPodAutoscaler" in kinds
    assert "Secret" in kinds
    assert kinds["ConfigMap"] == {"shakeout-config"}


def test_the_config_map_holds_a_config_the_services_accept() -> None:
    (doc,) = _docs(ROOT / "targets" / "kubernetes" / "base" / "config.yaml")
    data = json.loads(doc["data"]["config.json"])
    view = parse_config(data, zone="a")
    assert view.flags == DEFAULTS
    assert not validate_flags(data["flags"])
    kustomization = yaml.safe_load(
        (ROOT / "targets/kubernetes/base/kustomization.yaml").read_text()
    )
    assert "config.yaml" in kustomization["resources"]


def test_the_migration_job_validates_and_mounts_the_orders_store() -> None:
    orders = next(
        d for d in _docs(ROOT / "targets/kubernetes/base/orders.yaml") if d["kind"] == "Deployment"
    )
    job = migration_job(orders, "v2", step_pause_s=0.5, batch_rows=50)
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "shakeout.services.migration"]
    args = container["args"]
    assert args[args.index("--db") + 1] == "/var/lib/shakeout/orders.sqlite3"
    assert args[args.index("--to") + 1] == "v2"
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/shakeout"}]
    assert pod["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "orders-data"}}
    ]
    assert container["image"] == orders["spec"]["template"]["spec"]["containers"][0]["image"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    # not an orders pod: the orders Service and PodDisruptionBudget must not select it
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] != "orders"


def test_the_migration_job_needs_the_orders_data_dir() -> None:
    orders = next(
        d for d in _docs(ROOT / "targets/kubernetes/base/orders.yaml") if d["kind"] == "Deployment"
    )
    container = orders["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "SHAKEOUT_DATA_DIR"]
    with pytest.raises(ActivityFailed, match="SHAKEOUT_DATA_DIR"):
        migration_job(orders, "v2")
    with pytest.raises(ActivityFailed, match="unknown schema 'v3'"):
        migration_job(orders, "v3")


def test_a_broken_manifest_is_rejected() -> None:
    doc = _docs(ROOT / "targets" / "kubernetes" / "base" / "gateway.yaml")[0]
    doc["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_locust_manifests_validate_and_carry_the_load_spec() -> None:
    spec = LoadSpec(profile=Path("loadprofiles/steady.py"), rate_rps=300, expect_remote_workers=3)
    docs = render_locust_manifests(
        spec, workers=3, master_address="172.18.0.1", gateway_url="http://gateway:8080",
        namespace="shakeout-shop",
    )  # fmt: skip
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    worker = docs[2]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert env["SHAKEOUT_RATE"] == "300"
    assert env["SHAKEOUT_WORKERS"] == "3"
    assert worker["args"][worker["args"].index("--master-host") + 1] == "locust-master"
    assert docs[1]["endpoints"][0]["addresses"] == ["172.18.0.1"]
