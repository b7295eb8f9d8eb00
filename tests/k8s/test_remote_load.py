"""In-cluster Locust workers: the session creates and removes them through the real client,
and the drill engine starts them with a master that waits for them and removes them at the end.

The session tests run against the fake API server (``tests/k8s/fakeapi.py``); the engine tests
use a small fake session and a stand-in for ``LoadRun``, so no Locust process starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from shakeout import drill as drill_module
from shakeout.drill import Drill
from shakeout.errors import ConfigError, LoadError
from shakeout.k8s.session import KubernetesSession
from shakeout.k8s.workers import WORKER_OBJECTS
from shakeout.load import LoadSpec
from shakeout.measure import Recorder
from shakeout.records import RecordSet
from tests.k8s.conftest import NAMESPACE, ROOT
from tests.k8s.fakeapi import FakeApiServer

KIND = ROOT / "targets" / "kubernetes" / "kind.yaml"
STEADY = ROOT / "loadprofiles" / "steady.py"
# As ``resolve_profile`` names it (relative): the image holds it under /app (its WORKDIR).
PROFILE = Path("loadprofiles/steady.py")
MASTER_ADDRESS = "172.18.0.1"
IN_CLUSTER_URL = "http://gateway.shakeout-shop.svc:8080"


def worker_target(tmp_path: Path, kubeconfig: Path, **load: object) -> Path:
    """The kind target with the fake's kubeconfig and the given ``load:`` fields."""
    data = yaml.safe_load(KIND.read_text(encoding="utf-8"))
    data["cluster"]["kubeconfig"] = str(kubeconfig)
    data["slo"] = None
    data["load"].update({"workers": 3, "master_address": MASTER_ADDRESS, **load})
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def remote_spec(rate: float = 40.0, workers: int = 3) -> LoadSpec:
    """The spec the drill engine gives the master when the target runs ``workers`` remotely."""
    return LoadSpec(
        PROFILE, rate, duration_s=90.0, expect_remote_workers=workers, master_bind_host="0.0.0.0"
    )


def worker_objects(fake: FakeApiServer) -> dict[str, list[str]]:
    """Names of the Services, EndpointSlices and worker Deployments in the namespace."""
    c = fake.cluster
    return {
        "Service": sorted(n for ns, n in c.services if ns == NAMESPACE),
        "EndpointSlice": sorted(n for ns, n in c.endpointslices if ns == NAMESPACE),
        "Deployment": sorted(n for ns, n in c.deployments if ns == NAMESPACE and "locust" in n),
    }


def worker_pods(fake: FakeApiServer) -> list[dict[str, Any]]:
    """The pods the fake's controller runs for the worker Deployment."""
    return [
        p
        for (ns, _), p in fake.cluster.pods.items()
        if ns == NAMESPACE and p["metadata"]["labels"].get("fake/deployment") == "locust-worker"
    ]


def container_env(fake: FakeApiServer) -> dict[str, str]:
    dep = fake.cluster.deployments[(NAMESPACE, "locust-worker")]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


# --- the session against the fake API -------------------------------------------------------


def test_start_workers_creates_service_endpointslice_and_deployment(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    with KubernetesSession(worker_target(tmp_path, kubeconfig)) as session:
        assert session.remote_workers == 3
        spec = remote_spec(rate=40.0)
        session.start_workers(spec)
        assert worker_objects(fake) == {
            "Service": ["locust-master"],
            "EndpointSlice": ["locust-master-harness"],
            "Deployment": ["locust-worker"],
        }
        posted = [path for method, path in fake.cluster.log if method == "POST"]
        assert f"/api/v1/namespaces/{NAMESPACE}/services" in posted
        assert f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices" in posted
        assert f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments" in posted
        # read back through the real client, as a user's kubectl would see them
        core = client.CoreV1Api(session.api)
        service = core.read_namespaced_service("locust-master", NAMESPACE)
        assert service.spec.selector is None  # its endpoints are the harness, not pods
        assert [p.port for p in service.spec.ports] == [5557]
        slice_ = client.DiscoveryV1Api(session.api).read_namespaced_endpoint_slice(
            "locust-master-harness", NAMESPACE
        )
        assert slice_.metadata.labels["kubernetes.io/service-name"] == "locust-master"
        assert slice_.endpoints[0].addresses == [MASTER_ADDRESS]
        assert [p.port for p in slice_.ports] == [5557]
        dep = client.AppsV1Api(session.api).read_namespaced_deployment("locust-worker", NAMESPACE)
        assert dep.spec.replicas == 3
        assert len(worker_pods(fake)) == 3
        args = dep.spec.template.spec.containers[0].args
        assert args[args.index("--host") + 1] == IN_CLUSTER_URL
        assert args[args.index("--master-host") + 1] == "locust-master"
        assert args[args.index("-f") + 1] == "/app/loadprofiles/steady.py"
        env = container_env(fake)
        assert {k: v for k, v in env.items() if k != "SHAKEOUT_WORKERS"} == {
            k: v for k, v in spec.environment().items() if k != "SHAKEOUT_WORKERS"
        }
        assert env["SHAKEOUT_RATE"] == "40.0"
        assert env["SHAKEOUT_DURATION_S"] == "90.0"
        assert env["SHAKEOUT_WORKERS"] == "3"


def test_stop_workers_removes_them_and_is_idempotent(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    with KubernetesSession(worker_target(tmp_path, kubeconfig, workers=2)) as session:
        session.start_workers(remote_spec(workers=2))
        assert len(worker_pods(fake)) == 2
        session.stop_workers()
        assert worker_objects(fake) == {"Service": [], "EndpointSlice": [], "Deployment": []}
        assert worker_pods(fake) == []
        # the shop itself is untouched
        assert (NAMESPACE, "gateway") in fake.cluster.deployments
        deletes = [p for m, p in fake.cluster.log if m == "DELETE"]
        assert len(deletes) == len(WORKER_OBJECTS)
        session.stop_workers()  # everything is gone already: each 404 is success
        again = [p for m, p in fake.cluster.log if m == "DELETE"]
        assert again[len(deletes) :] == deletes


def test_start_after_a_killed_run_replaces_what_it_left(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    path = worker_target(tmp_path, kubeconfig)
    killed = KubernetesSession(path)
    killed.start_workers(remote_spec(rate=10.0))
    old_pods = {p["metadata"]["name"] for p in worker_pods(fake)}
    assert len(old_pods) == 3
    # the harness was killed: nothing removed the workers, the next run starts over them
    with KubernetesSession(path) as session:
        session.start_workers(remote_spec(rate=75.0))
        assert worker_objects(fake) == {
            "Service": ["locust-master"],
            "EndpointSlice": ["locust-master-harness"],
            "Deployment": ["locust-worker"],
        }
        assert container_env(fake)["SHAKEOUT_RATE"] == "75.0"
        pods = {p["metadata"]["name"] for p in worker_pods(fake)}
        assert len(pods) == 3
        assert not pods & old_pods  # the old run's workers are gone
    # close() removed what this session started
    assert worker_objects(fake) == {"Service": [], "EndpointSlice": [], "Deployment": []}


def test_close_removes_started_workers_and_leaves_a_worker_less_target_alone(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    session = KubernetesSession(worker_target(tmp_path, kubeconfig))
    session.start_workers(remote_spec())
    session.close()
    assert worker_objects(fake) == {"Service": [], "EndpointSlice": [], "Deployment": []}
    fake.cluster.log.clear()
    plain = KubernetesSession(worker_target(tmp_path, kubeconfig, workers=0))
    assert plain.remote_workers == 0
    plain.stop_workers()
    plain.close()
    assert fake.cluster.log == []  # no worker to remove, no API call


def test_missing_master_address_is_a_config_error_before_any_api_call(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    session = KubernetesSession(worker_target(tmp_path, kubeconfig, master_address=None))
    with session, pytest.raises(ConfigError, match=r"target\.yaml: field load\.master_address"):
        session.start_workers(remote_spec())
    assert fake.cluster.log == []


def test_other_unusable_worker_settings_name_their_field(
    fake: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    session = KubernetesSession(worker_target(tmp_path, kubeconfig, master_port=6000))
    with session, pytest.raises(ConfigError, match=r"target\.yaml: field load\.master_port: 6000"):
        session.start_workers(remote_spec())
    data = yaml.safe_load(worker_target(tmp_path, kubeconfig).read_text(encoding="utf-8"))
    del data["gateway"]["in_cluster_url"]
    (tmp_path / "target.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    session = KubernetesSession(tmp_path / "target.yaml")
    with session, pytest.raises(ConfigError, match=r"field gateway\.in_cluster_url: required"):
        session.start_workers(remote_spec())
    session = KubernetesSession(worker_target(tmp_path, kubeconfig))
    with session, pytest.raises(LoadError, match=r"expects 2 remote worker\(s\) but .* starts 3"):
        session.start_workers(remote_spec(workers=2))
    assert fake.cluster.log == []


# --- the drill engine -----------------------------------------------------------------------


class RemoteSession:
    """A target session whose load workers run elsewhere; it records what the engine asks."""

    def __init__(self, target_file: Path, calls: list[str], workers: int = 2) -> None:
        self.target = "fake"
        self.target_file = target_file
        self.gateway_url = "http://127.0.0.1:9"
        self.remote_workers = workers
        self.calls = calls
        self.worker_specs: list[LoadSpec] = []
        self.kind = "kubernetes"
        self.fault_experiments: dict[str, str] = {}
        self.slo_file = None

    def fault_skip_reason(self, experiment: Path) -> str | None:
        return None

    def orders(self) -> None:
        return None

    def chaos_configuration(self) -> dict[str, Any]:
        return {"shakeout_target": self.target}

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return []

    def rollout(self, service: str) -> dict[str, Any] | None:
        return None

    def alerting(self) -> str:
        return "this fake target has no alerting"

    def steady_state(self) -> tuple[bool, str]:
        return True, ""

    def start_workers(self, spec: LoadSpec) -> None:
        self.calls.append("start_workers")
        self.worker_specs.append(spec)

    def stop_workers(self) -> None:
        self.calls.append("stop_workers")


class StubLoadRun:
    """Stands in for ``LoadRun``: records the spec and the calls, runs no Locust."""

    fail_start = False

    def __init__(self, spec: LoadSpec, host: str, run_dir: Path, progress: Any = None) -> None:
        self.spec, self.host = spec, host
        self.recorder = Recorder()
        self.warnings: list[str] = []
        self.running = False
        CALLS.append("LoadRun")
        RUNS.append(self)

    def start(self) -> None:
        CALLS.append("load.start")
        if self.fail_start:
            raise LoadError("the master saw no worker")
        self.running = True

    def stop(self) -> None:
        CALLS.append("load.stop")
        self.running = False

    def report(self) -> None:
        """Nothing to print."""

    def save_series(self, path: Path) -> None:
        path.write_text("[]", encoding="utf-8")

    def records(self) -> RecordSet:
        """No request was made."""
        return RecordSet([])

    @property
    def ended(self) -> bool:
        return "load.stop" in CALLS

    def summary(self) -> dict[str, dict[str, float]]:
        """No request was made."""
        return {}

    def generator_health(self) -> dict[str, float | int | bool]:
        """Nothing was sent late."""
        return {"lateness_p99_ms": 0.0, "saturated": False}


CALLS: list[str] = []
RUNS: list[StubLoadRun] = []


@pytest.fixture
def local_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local target file (with its SLO file) copied to tmp, and LoadRun stubbed."""
    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(tmp_path / "runtime"))
    for name in ("local.yaml", "local.slo.yaml"):
        (tmp_path / name).write_text(
            (ROOT / "targets" / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    CALLS.clear()
    RUNS.clear()
    monkeypatch.setattr(drill_module, "LoadRun", StubLoadRun)
    monkeypatch.setattr(StubLoadRun, "fail_start", False)
    return tmp_path / "local.yaml"


def test_drill_starts_remote_workers_before_the_master_and_stops_them_at_close(
    local_target: Path, tmp_path: Path
) -> None:
    session = RemoteSession(local_target, CALLS, workers=2)
    drill = Drill(session, "remote", tmp_path / "reports")  # type: ignore[arg-type]
    load = drill.start_load(str(STEADY), 30.0, max_duration_s=60.0)
    assert isinstance(load, StubLoadRun)
    (spec,) = session.worker_specs
    assert spec is load.spec  # the workers get exactly what the master runs
    assert spec.expect_remote_workers == 2
    assert spec.master_bind_host == "0.0.0.0"
    assert (spec.profile, spec.rate_rps, spec.duration_s) == (STEADY, 30.0, 60.0)
    assert spec.environment()["SHAKEOUT_WORKERS"] == "2"
    assert CALLS == ["start_workers", "LoadRun", "load.start"]
    drill.close()
    assert CALLS[3:] == ["load.stop", "stop_workers"]


def test_workers_are_stopped_when_the_master_fails_to_start(
    local_target: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StubLoadRun, "fail_start", True)
    session = RemoteSession(local_target, CALLS)
    drill = Drill(session, "remote fails", tmp_path / "reports")  # type: ignore[arg-type]
    with pytest.raises(LoadError, match="saw no worker"):
        drill.start_load(str(STEADY), 30.0)
    drill.close(LoadError("the master saw no worker"))
    assert CALLS[-1] == "stop_workers"


def test_a_target_without_remote_workers_runs_local_workers(
    local_target: Path, tmp_path: Path
) -> None:
    session = RemoteSession(local_target, CALLS, workers=0)
    drill = Drill(session, "local", tmp_path / "reports")  # type: ignore[arg-type]
    drill.start_load(str(STEADY), 30.0, workers=2)
    (run,) = RUNS
    assert run.spec.expect_remote_workers == 0
    assert run.spec.master_bind_host == "127.0.0.1"
    assert run.spec.workers == 2
    assert "start_workers" not in CALLS
