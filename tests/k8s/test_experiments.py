"""Every Kubernetes fault word, run as its JSON experiment by `chaos run --rollback-strategy always`
against the fake API server through the real kubernetes client and chaosk8s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.conftest import CONTEXT, NAMESPACE, ROOT
from tests.k8s.fakeapi import FakeApiServer

TARGET = ROOT / "targets" / "kubernetes" / "kind.yaml"
FAULTS: dict[str, str] = yaml.safe_load(TARGET.read_text())["faults"]
# The local catalogue's words when the Kubernetes target was written; words added to the local
# target since (config-change, schema-migration...) get their counterpart as one JSON file each.
LOCAL_WORDS = [
    "crash-loop", "replica-kill", "zone-outage", "zone-freeze", "dependency-errors",
    "dependency-latency", "bad-canary", "key-rotation", "secret-store-outage", "scale",
]  # fmt: skip
CHAOS = Path(sys.executable).parent / "chaos"


def run_chaos(word: str, kubeconfig: Path, tmp_path: Path, **variables: Any) -> dict[str, Any]:
    """Run the word's experiment with no hold time; return its journal."""
    journal = tmp_path / f"journal-{word}.json"
    command = [str(CHAOS), "--no-version-check", "--log-file", str(tmp_path / f"{word}.log"),
               "run", "--rollback-strategy", "always", "--journal-path", str(journal),
               "--var", f"shakeout_namespace={NAMESPACE}", "--var", "duration_s:float=0",
               "--var", "ready_timeout_s:float=5", "--var", "wait_s:float=5"]  # fmt: skip
    for key, value in variables.items():
        kind = "int" if isinstance(value, int) else "float" if isinstance(value, float) else None
        command += ["--var", f"{key}:{kind}={value}" if kind else f"{key}={value}"]
    command.append(str(ROOT / FAULTS[word]))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBERNETES_CONTEXT": CONTEXT}
    subprocess.run(command, env=env, cwd=ROOT, timeout=120, check=False, capture_output=True)
    result: dict[str, Any] = json.loads(journal.read_text())
    return result


def outputs(journal: dict[str, Any], part: str = "run") -> dict[str, Any]:
    """Activity name -> (status, output) of the method ("run") or the rollbacks."""
    return {r["activity"]["name"]: (r["status"], r.get("output")) for r in journal[part]}


def deployment(fake: FakeApiServer, name: str) -> dict[str, Any]:
    return fake.cluster.deployments[(NAMESPACE, name)]


def env_of(dep: dict[str, Any]) -> dict[str, str]:
    return {
        e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_every_local_word_has_a_kubernetes_experiment() -> None:
    local = yaml.safe_load((ROOT / "targets" / "local.yaml").read_text())["faults"]
    assert set(LOCAL_WORDS) <= set(local)
    missing = set(LOCAL_WORDS) - set(FAULTS)
    assert not missing, f"local fault words without a Kubernetes counterpart: {missing}"
    for word, path in FAULTS.items():
        assert (ROOT / path).is_file(), f"{word}: {path} does not exist"


@pytest.mark.parametrize("word", sorted(FAULTS))
def test_experiment_is_valid_and_reverts_itself(word: str) -> None:
    doc = json.loads((ROOT / FAULTS[word]).read_text())
    subprocess.run(
        [str(CHAOS), "--no-version-check", "validate", str(ROOT / FAULTS[word])],
        check=True, capture_output=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    names = [a["name"] for a in doc["method"]]
    if doc["rollbacks"]:
        assert any(n.startswith("revert-") for n in names), f"{word}: no revert-* in the method"
    assert "shakeout_namespace" in doc["configuration"]


def test_replica_kill_terminates_a_pod_that_the_deployment_replaces(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    before = {n for (ns, n) in fake.cluster.pods if n.startswith("gateway-")}
    journal = run_chaos("replica-kill", kubeconfig, tmp_path, service="gateway", count=2)
    assert journal["status"] == "completed", journal
    status, killed = outputs(journal)["kill-replicas"]
    assert status == "succeeded"
    assert len(killed) == 2
    assert set(killed) <= before
    after = {n for (ns, n) in fake.cluster.pods if n.startswith("gateway-")}
    assert len(after) == 3
    assert not set(killed) & after
    assert ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{killed[0]}") in fake.cluster.log


def test_zone_outage_drains_the_zone_and_uncordons_it(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    assert fake.cluster.pods_on("b")
    journal = run_chaos("zone-outage", kubeconfig, tmp_path, zone="b")
    assert journal["status"] == "completed", journal
    assert outputs(journal)["take-zone-down"] == ("succeeded", ["node-b1", "node-b2"])
    evictions = [p for m, p in fake.cluster.log if m == "POST" and p.endswith("/eviction")]
    assert evictions, "drain evicted nothing"
    assert not fake.cluster.pods_on("b"), "pods still in the drained zone"
    assert all(not n["spec"].get("unschedulable") for n in fake.cluster.nodes.values())
    assert outputs(journal, "rollbacks")["bring-zone-back"][0] == "succeeded"


@pytest.mark.parametrize(
    ("word", "variables", "knob", "value"),
    [
        ("crash-loop", {"service": "orders"}, "SHAKEOUT_CRASH_ON_START", "1"),
        (
            "dependency-errors",
            {"service": "payments", "error_rate": "0.2"},
            "SHAKEOUT_ERROR_RATE",
            "0.2",
        ),
        (
            "dependency-latency",
            {"service": "payments", "latency_ms": "500"},
            "SHAKEOUT_EXTRA_LATENCY_MS",
            "500",
        ),
    ],
)
def test_environment_faults_roll_out_and_back(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path, word: str, variables: dict[str, Any],
    knob: str, value: str,
) -> None:  # fmt: skip
    service = variables["service"]
    original = env_of(deployment(fake, service))
    journal = run_chaos(word, kubeconfig, tmp_path, **variables)
    assert journal["status"] == "completed", journal
    applied = next(o for s, o in outputs(journal).values() if isinstance(o, dict) and "env" in o)
    assert applied["env"] == {knob: value}
    patches = [
        p for m, p in fake.cluster.log if m == "PATCH" and p.endswith(f"/deployments/{service}")
    ]
    assert len(patches) >= 2, "fault not patched in and out"
    dep = deployment(fake, service)
    assert env_of(dep) == original
    assert "shakeout.io/saved-env" not in (dep["metadata"].get("annotations") or {})
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "v1"
    if word == "crash-loop":
        rollout = outputs(journal)["wait-for-rollout-outcome"][1]
        assert rollout["status"] == "failed"
        assert rollout["reason"] == "ProgressDeadlineExceeded"


def test_bad_canary_runs_beside_stable_and_is_deleted(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    journal = run_chaos("bad-canary", kubeconfig, tmp_path, service="catalog", weight=0.5)
    assert journal["status"] == "completed", journal
    out = outputs(journal)["roll-out-bad-canary"][1]
    assert out == {"deployment": "catalog-canary", "replicas": 2, "version": "v2-canary"}
    assert ("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments") in fake.cluster.log
    assert (NAMESPACE, "catalog-canary") not in fake.cluster.deployments
    assert outputs(journal, "rollbacks")["roll-back-canary"][1]["deleted"] is False


def test_scale_uses_chaosk8s_and_restores_the_count(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    journal = run_chaos("scale", kubeconfig, tmp_path, service="gateway", replicas=1)
    assert journal["status"] == "completed", journal
    assert outputs(journal)["remember-replicas"] == ("succeeded", 3)
    assert outputs(journal)["revert-restore-scale"][1] == {
        "deployment": "gateway", "restored": True, "replicas": 3,
    }  # fmt: skip
    dep = deployment(fake, "gateway")
    assert dep["spec"]["replicas"] == 3
    assert "shakeout.io/replicas-before" not in (dep["metadata"].get("annotations") or {})


def test_key_rotation_patches_the_secret(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    import base64

    secret = fake.cluster.secrets[(NAMESPACE, "shakeout-shared-key")]
    before = json.loads(base64.b64decode(secret["data"]["key.json"]))
    journal = run_chaos("key-rotation", kubeconfig, tmp_path)
    assert journal["status"] == "completed", journal
    secret = fake.cluster.secrets[(NAMESPACE, "shakeout-shared-key")]
    after = json.loads(base64.b64decode(secret["data"]["key.json"]))
    assert after["previous"] == before["current"]
    assert after["current"] != before["current"]


def test_secret_store_outage_moves_the_secret_and_brings_it_back(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    original = fake.cluster.secrets[(NAMESPACE, "shakeout-shared-key")]["data"]
    journal = run_chaos("secret-store-outage", kubeconfig, tmp_path)
    assert journal["status"] == "completed", journal
    assert outputs(journal)["secret-store-down"][1] == {
        "secret": "shakeout-shared-key",
        "moved": True,
    }
    assert (
        "DELETE",
        f"/api/v1/namespaces/{NAMESPACE}/secrets/shakeout-shared-key",
    ) in fake.cluster.log
    assert fake.cluster.secrets[(NAMESPACE, "shakeout-shared-key")]["data"] == original
    assert (NAMESPACE, "shakeout-shared-key-shakeout-saved") not in fake.cluster.secrets


MESH_WORDS = ["zone-freeze", "network-latency", "packet-loss", "cpu-stress", "memory-stress"]


@pytest.mark.parametrize("word", MESH_WORDS)
def test_chaos_mesh_faults_create_and_delete_their_object(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path, word: str
) -> None:
    fake.cluster.crds |= {"networkchaos.chaos-mesh.org", "stresschaos.chaos-mesh.org"}
    journal = run_chaos(word, kubeconfig, tmp_path)
    assert journal["status"] == "completed", journal
    created = [p for m, p in fake.cluster.log if m == "POST" and "chaos-mesh.org" in p]
    deleted = [p for m, p in fake.cluster.log if m == "DELETE" and "chaos-mesh.org" in p]
    assert len(created) == 1
    assert len(deleted) == 2
    assert not fake.cluster.custom


@pytest.mark.parametrize("word", MESH_WORDS)
def test_chaos_mesh_faults_stop_before_the_method_without_chaos_mesh(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path, word: str
) -> None:
    journal = run_chaos(word, kubeconfig, tmp_path)
    before = journal["steady_states"]["before"]
    assert before["steady_state_met"] is False
    assert before["probes"][0]["activity"]["name"] == "chaos-mesh-installed"
    assert journal["run"] == [], "the method ran without Chaos Mesh"
    assert all(r["status"] == "succeeded" for r in journal["rollbacks"])
    assert not [p for m, p in fake.cluster.log if m == "POST" and "chaos-mesh.org" in p]
