"""Every manifest of targets/kubernetes validates against the Kubernetes OpenAPI schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shakeout.k8s.locust import render_locust_manifests
from shakeout.load import LoadSpec
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
    assert kinds["Deployment"] == kinds["Service"] == kinds["PodDisruptionBudget"]
    assert "HorizontalPodAutoscaler" in kinds
    assert "Secret" in kinds


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
