"""Every Kubernetes fault word, run as its JSON experiment by `chaos run --rollback-strategy always`
against the fake API server through the real kubernetes client and chaosk8s."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shakeout.contracts import key_id
from shakeout.faults import REGISTRY
from tests.k8s.conftest import CONTEXT, NAMESPACE, ROOT
from tests.k8s.fakeapi import FakeApiServer

# Each fault unit's Kubernetes experiment.
FAULTS: dict[str, str] = {
    word: fault.experiments["kubernetes"]
    for word, fault in REGISTRY.items()
    if "kubernetes" in fault.experiments
}
# Every fault the embedded platform runs: a unit added with a local experiment but without its
# Kubernetes counterpart fails the coverage test.
LOCAL_WORDS: list[str] = [w for w, f in REGISTRY.items() if "local" in f.experiments]
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
    assert len(LOCAL_WORDS) >= 15, "the fault registry lost its units"
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


def test_registry_outage_keeps_the_old_pods_and_restores_the_image(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    image = deployment(fake, "catalog")["spec"]["template"]["spec"]["containers"][0]["image"]
    serving = {n for (_, n) in fake.cluster.pods if n.startswith("catalog-")}
    journal = run_chaos("registry-outage", kubeconfig, tmp_path, service="catalog")
    assert journal["status"] == "completed", journal
    status, output = outputs(journal)["release-from-unreachable-registry"]
    assert status == "succeeded"
    assert output["image"].startswith("registry.invalid:5000/")
    assert output["image"].endswith(":v2")
    released = [w for m, p, w in fake.cluster.writes if m == "PATCH" and p.endswith("/catalog")]
    assert any(
        w["spec"]["template"]["spec"]["containers"][0]["image"] == output["image"] for w in released
    ), "the release was never applied"
    dep = deployment(fake, "catalog")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert "shakeout.io/image-before" not in (dep["metadata"].get("annotations") or {})
    assert outputs(journal, "rollbacks")["restore-image"][0] == "succeeded"
    # The new pods never pulled their image, so the old ones were never replaced.
    assert {n for (_, n) in fake.cluster.pods if n.startswith("catalog-")} == serving


def _shop_nodes(fake: FakeApiServer) -> list[str]:
    return sorted({p["spec"]["nodeName"] for p in fake.cluster.pods.values()})


def test_node_drain_drains_each_node_in_turn_and_uncordons_it(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    nodes = _shop_nodes(fake)
    journal = run_chaos("node-drain", kubeconfig, tmp_path, timeout_s=10.0)
    assert journal["status"] == "completed", journal
    status, output = outputs(journal)["drain-nodes-in-turn"]
    assert status == "succeeded"
    assert sorted(output["drained"]) == nodes
    patched = [p.rsplit("/", 1)[1] for m, p in fake.cluster.log if m == "PATCH" and "/nodes/" in p]
    assert patched[: 2 * len(nodes)] == [n for n in nodes for _ in (0, 1)], "not one at a time"
    evictions = [p for m, p in fake.cluster.log if m == "POST" and p.endswith("/eviction")]
    assert len(evictions) >= sum(len(v) for v in output["drained"].values()) > 0
    assert all(not n["spec"].get("unschedulable") for n in fake.cluster.nodes.values())
    assert not any(
        "shakeout.io/drain" in n["metadata"]["labels"] for n in fake.cluster.nodes.values()
    )


def test_node_drain_held_by_a_budget_fails_and_its_rollback_uncordons(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    for (_, name), pdb in fake.cluster.pdbs.items():
        if name.startswith("catalog"):
            pdb["spec"] = {**pdb["spec"], "minAvailable": 2}  # every catalog pod: none may go
    journal = run_chaos("node-drain", kubeconfig, tmp_path, timeout_s=1.0)
    status, _ = outputs(journal)["drain-nodes-in-turn"]
    assert status == "failed"
    failure = "".join(journal["run"][0].get("exception", []))
    assert "429" in failure
    assert "catalog-" in failure
    assert outputs(journal, "rollbacks")["uncordon-drained-nodes"][0] == "succeeded"
    assert all(not n["spec"].get("unschedulable") for n in fake.cluster.nodes.values())
    assert (
        len([p for p in fake.cluster.pods.values() if p["metadata"]["name"].startswith("catalog-")])
        == 2
    )


@pytest.mark.parametrize(
    ("word", "variables", "knob", "value"),
    [
        ("crash-loop", {"service": "orders"}, "SHAKEOUT_CRASH_ON_START", "1"),
        (
            "dependency-errors",
            {"service": "payments", "error_rate": 0.2},
            "SHAKEOUT_ERROR_RATE",
            "0.2",
        ),
        (
            "dependency-latency",
            {"service": "payments", "latency_ms": 500},
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
    # The journal and the chaos log name the keys by id only.
    assert outputs(journal)["rotate-shared-key"][1]["key_id"] == key_id(after["current"])
    written = json.dumps(journal) + (tmp_path / "key-rotation.log").read_text(encoding="utf-8")
    assert before["current"] not in written
    assert after["current"] not in written


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


MESH_WORDS = [
    "zone-freeze",
    "zone-packet-loss",
    "network-latency",
    "packet-loss",
    "cpu-stress",
    "memory-stress",
]


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


# --- the five words added to the local catalogue after the Kubernetes target ------------------


def written(fake: FakeApiServer, method: str, path_end: str) -> list[dict[str, Any]]:
    """What the fake answered to each successful write whose path ends so, in order."""
    return [obj for m, p, obj in fake.cluster.writes if m == method and p.endswith(path_end)]


@pytest.mark.parametrize(
    ("word", "variables", "version", "env"),
    [
        ("good-canary", {"service": "catalog", "weight": 0.5, "timeout_s": 0.0}, "v2", {}),
        (
            "bad-canary-latency",
            {"service": "payments", "weight": 0.5, "latency_ms": 700},
            "v2-slow-canary",
            {"SHAKEOUT_EXTRA_LATENCY_MS": "700", "SHAKEOUT_ERROR_RATE": "0.0"},
        ),
    ],
)
def test_new_canaries_run_beside_stable_and_are_deleted(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path, word: str, variables: dict[str, Any],
    version: str, env: dict[str, str],
) -> None:  # fmt: skip
    service = variables["service"]
    stable_before = copy.deepcopy(deployment(fake, service))
    journal = run_chaos(word, kubeconfig, tmp_path, **variables)
    assert journal["status"] == "completed", journal
    (canary,) = written(fake, "POST", "/deployments")
    assert canary["metadata"]["name"] == f"{service}-canary"
    assert canary["spec"]["replicas"] == 2  # weight 0.5 beside 2 stable replicas
    labels = canary["spec"]["template"]["metadata"]["labels"]
    assert labels["shakeout.io/track"] == "canary"
    assert labels["app.kubernetes.io/version"] == version
    canary_env = env_of(canary)
    assert canary_env["SHAKEOUT_VERSION"] == version
    for knob in ("SHAKEOUT_EXTRA_LATENCY_MS", "SHAKEOUT_ERROR_RATE"):
        assert canary_env.get(knob) == env.get(knob)
    # the revert deleted it; the rollback found nothing left; stable was never touched
    assert (NAMESPACE, f"{service}-canary") not in fake.cluster.deployments
    assert not [p for p in fake.cluster.pods if p[1].startswith(f"{service}-canary-")]
    assert outputs(journal)["revert-roll-back-canary"][1]["deleted"] is True
    assert outputs(journal, "rollbacks")["roll-back-canary"][1]["deleted"] is False
    assert deployment(fake, service)["spec"] == stable_before["spec"]


def test_capacity_loss_cordons_nodes_of_the_service_and_evicts_only_its_pods(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    def on(node: str) -> set[str]:
        return {n for (_, n), p in fake.cluster.pods.items() if p["spec"]["nodeName"] == node}

    gateway_nodes = {
        p["spec"]["nodeName"] for (_, n), p in fake.cluster.pods.items() if n.startswith("gateway-")
    }
    assert len(gateway_nodes) == 3
    others_before = {
        node: {n for n in on(node) if not n.startswith("gateway-")} for node in gateway_nodes
    }
    journal = run_chaos("capacity-loss", kubeconfig, tmp_path, service="gateway", count=2)
    assert journal["status"] == "completed", journal
    status, out = outputs(journal)["lose-nodes-of-replicas"]
    assert status == "succeeded"
    assert len(out["nodes"]) == 2
    assert set(out["nodes"]) <= gateway_nodes
    assert len(out["evicted"]) == 2
    assert all(p.startswith("gateway-") for p in out["evicted"])
    evictions = [p for m, p in fake.cluster.log if m == "POST" and p.endswith("/eviction")]
    assert sorted(evictions) == sorted(
        f"/api/v1/namespaces/{NAMESPACE}/pods/{p}/eviction" for p in out["evicted"]
    )
    # cordoned and marked, then uncordoned and unmarked
    for node in out["nodes"]:
        cordon, uncordon = written(fake, "PATCH", f"/nodes/{node}")
        assert cordon["spec"]["unschedulable"] is True
        assert cordon["metadata"]["labels"]["shakeout.io/capacity-loss"] == "gateway"
        assert uncordon["spec"]["unschedulable"] is False
        assert "shakeout.io/capacity-loss" not in uncordon["metadata"]["labels"]
        # the other services' pods there were left alone
        assert others_before[node] <= on(node)
    assert all(not n["spec"].get("unschedulable") for n in fake.cluster.nodes.values())
    assert outputs(journal)["revert-restore-capacity"][1]["restored"] is True
    assert outputs(journal, "rollbacks")["restore-capacity"][1] == {
        "service": "gateway", "nodes": [], "restored": False,
    }  # fmt: skip
    # the replacements run on the remaining nodes: the Deployment is whole again
    assert len([n for (_, n) in fake.cluster.pods if n.startswith("gateway-")]) == 3


def config_json(fake: FakeApiServer) -> tuple[dict[str, Any], dict[str, str]]:
    cm = fake.cluster.configmaps[(NAMESPACE, "shakeout-config")]
    return json.loads(cm["data"]["config.json"]), cm["metadata"].get("annotations") or {}


def test_config_change_patches_the_configmap_and_restores_it(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    before, _ = config_json(fake)
    assert before["flags"] == {"catalog.pricing": "list"}
    journal = run_chaos("config-change", kubeconfig, tmp_path, flag="catalog.pricing", value="sale")
    assert journal["status"] == "completed", journal
    assert outputs(journal)["set-flag"][1] == {
        "status": "applied", "version": before["version"] + 1,
        "flags": {"catalog.pricing": "sale"}, "staged": False,
    }  # fmt: skip
    applied, reverted = written(fake, "PATCH", "/configmaps/shakeout-config")
    changed = json.loads(applied["data"]["config.json"])
    assert changed["flags"] == {"catalog.pricing": "sale"}
    assert json.loads(applied["metadata"]["annotations"]["shakeout.io/config-before"]) == before
    after, annotations = config_json(fake)
    assert after["flags"] == before["flags"]
    assert after["version"] == before["version"] + 2  # a new version: every replica re-reads it
    assert "shakeout.io/config-before" not in annotations
    assert json.loads(reverted["data"]["config.json"]) == after
    assert outputs(journal, "rollbacks")["restore-config"][1]["status"] == "unchanged"


@pytest.mark.parametrize(("flag", "value"), [("catalog.pricing", "free"), ("checkout.fast", "on")])
def test_config_change_refuses_an_unknown_flag_or_value_before_anything_changes(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path, flag: str, value: str
) -> None:
    before = copy.deepcopy(fake.cluster.configmaps[(NAMESPACE, "shakeout-config")])
    journal = run_chaos("config-change", kubeconfig, tmp_path, flag=flag, value=value)
    out = outputs(journal)["set-flag"][1]
    assert out["status"] == "rejected"
    assert flag in out["reason"]
    assert not written(fake, "PATCH", "/configmaps/shakeout-config")
    assert fake.cluster.configmaps[(NAMESPACE, "shakeout-config")] == before


class MigrationRunner:
    """The fake's job runner: runs a migration Job's command here, on a real orders store.

    The Job's ``--db`` lives under the orders volume's mount path; the runner maps that path to
    a temporary directory holding a store the orders service's own schema code created, and
    runs ``python -m shakeout.services.migration`` on it (without the phase pauses).
    """

    def __init__(self, tmp_path: Path, orders: int = 5) -> None:
        self.root = tmp_path / "orders-volume"
        self.root.mkdir()
        self.schemas: list[str] = []
        self.logs: list[str] = []
        from shakeout.services import migration
        from shakeout.services.orders import DB_FILENAME

        self.db = self.root / DB_FILENAME
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        migration.ensure_schema(conn)
        for i in range(orders):
            items = json.dumps([{"product_id": "p1", "quantity": 2}])
            row = (f"o{i}", f"k{i}", items, 1000, f"c{i}", f"r{i}", "confirmed", 1.0 + i)
            migration.insert(conn, "orders", row, ignore=False)
        conn.close()

    def state(self) -> tuple[str, int]:
        """The store's schema and its number of orders."""
        from shakeout.services import migration

        conn = sqlite3.connect(self.db)
        try:
            state = migration.read_state(conn)
            (count,) = conn.execute(f"SELECT COUNT(*) FROM {state.read_table}").fetchone()
            return state.schema, int(count)
        finally:
            conn.close()

    def __call__(self, job: dict[str, Any]) -> bool:
        container = job["spec"]["template"]["spec"]["containers"][0]
        (mount,) = container["volumeMounts"]
        args = list(container["args"])
        db = args[args.index("--db") + 1]
        assert db.startswith(mount["mountPath"] + "/")
        args[args.index("--db") + 1] = str(self.root / db[len(mount["mountPath"]) + 1 :])
        args[args.index("--step-pause-s") + 1] = "0"
        assert container["command"][0] == "python"
        done = subprocess.run(
            [sys.executable, *container["command"][1:], *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        self.logs.append(done.stdout + done.stderr)
        self.schemas.append(self.state()[0])
        return done.returncode == 0


def test_schema_migration_runs_a_job_on_the_orders_volume_and_migrates_back(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    runner = MigrationRunner(tmp_path)
    fake.cluster.job_runner = runner
    assert runner.state() == ("v1", 5)
    journal = run_chaos("schema-migration", kubeconfig, tmp_path)
    assert journal["status"] == "completed", (journal, runner.logs)
    jobs = written(fake, "POST", "/jobs")
    tos = [j["spec"]["template"]["spec"]["containers"][0]["args"] for j in jobs]
    assert [a[a.index("--to") + 1] for a in tos] == ["v2", "v1", "v1"]  # apply, revert, rollback
    # the store went to v2 and back, losing nothing; the repeated revert was a no-op
    assert runner.schemas == ["v2", "v1", "v1"]
    assert '"step": "contract"' in runner.logs[0]
    assert '"step": "contract"' not in runner.logs[2]
    assert runner.state() == ("v1", 5)
    orders = deployment(fake, "orders")["spec"]["template"]["spec"]
    pod = jobs[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == orders["containers"][0]["image"]
    assert pod["volumes"] == [v for v in orders["volumes"] if v["name"] == "data"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "orders-data"
    assert outputs(journal)["migrate-orders-store"][1]["status"] == "completed"
    assert not fake.cluster.jobs, "a finished Job was left behind"


def test_a_failed_migration_job_fails_the_action_and_is_kept_for_its_logs(
    fake: FakeApiServer, kubeconfig: Path
) -> None:
    from chaoslib.exceptions import ActivityFailed

    from shakeout.k8s.actions.job import MIGRATION_JOB, run_migration_job

    fake.cluster.job_runner = lambda job: False
    with pytest.raises(ActivityFailed, match=f"logs -n {NAMESPACE} job/{MIGRATION_JOB}"):
        run_migration_job("v2", timeout_s=5, configuration={"shakeout_namespace": NAMESPACE})
    assert (NAMESPACE, MIGRATION_JOB) in fake.cluster.jobs
    # the next run deletes the failed Job before creating its own
    fake.cluster.job_runner = None
    out = run_migration_job("v1", timeout_s=5, configuration={"shakeout_namespace": NAMESPACE})
    assert out["status"] == "completed"
    assert not fake.cluster.jobs
    # each run deletes a leftover first (none for the first; the failed Job for the second),
    # and the second deletes its own completed Job
    deletes = [p for m, p in fake.cluster.log if m == "DELETE" and p.endswith(MIGRATION_JOB)]
    assert len(deletes) == 3
    assert len(written(fake, "POST", "/jobs")) == 2
