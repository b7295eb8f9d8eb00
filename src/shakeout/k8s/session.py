"""A drill session against a Kubernetes target: what the drill engine needs from a cluster.

:class:`KubernetesSession` stands where the engine uses a ``PlatformState`` and a
``PlatformClient`` for the embedded platform: the target's name and file, the gateway URL
(a URL from the target file, or a ``kubectl port-forward`` this session opens and ``close()``
ends), the configuration every Kubernetes experiment needs, the namespace's Events as the
platform's event stream, each service's rollout and the steady state. :meth:`check_safety`
must be called before anything touches the cluster. With ``load.workers > 0`` it also starts
the in-cluster Locust workers a drill's load runs on (:meth:`start_workers`) and removes them
(:meth:`stop_workers`, also from ``close()``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from shakeout._process import stop_process
from shakeout.datacheck import OrderStore, ShopOrders
from shakeout.errors import ConfigError, LoadError
from shakeout.k8s.locust import render_locust_manifests
from shakeout.k8s.probes import _unavailable, rollout_state
from shakeout.k8s.target import KubernetesTarget, check_allowlists, load_kubernetes_target
from shakeout.k8s.workers import WORKER_OBJECTS, create_or_replace, delete_and_wait
from shakeout.load import LoadSpec as LoadRunSpec
from shakeout.observability.alerts import AlertSource

PORT_FORWARD_TIMEOUT_S = 20.0
# The port the harness's Locust master listens on: ``shakeout.load.LoadRun`` starts it without
# ``--master-bind-port``, so it is Locust's default, and the EndpointSlice must point there.
LOCUST_MASTER_PORT = 5557


class KubernetesSession:
    """One harness session against a cluster target (open with the target file, then ``close``)."""

    def __init__(self, target_file: Path | str, *, allow_production: bool = False) -> None:
        """Load and check the target file; refuse an unsafe target before any API call."""
        self.target_file = Path(target_file)
        self.spec: KubernetesTarget = load_kubernetes_target(self.target_file)
        self.target = self.spec.name
        self.check_safety(allow_production)
        self._api: client.ApiClient | None = None
        self._forward: subprocess.Popen[bytes] | None = None
        self._gateway_url: str | None = self.spec.gateway.url
        self._seen: dict[str, int] = {}
        self._events: list[dict[str, Any]] = []
        self._workers_started = False

    # safety

    def check_safety(self, allow_production: bool) -> None:
        """Refuse a context or namespace off the allowlists, a production-looking context, or
        a kubeconfig file that is not there. Raises ConfigError naming the file and field."""
        check_allowlists(self.spec, self.target_file, allow_production)
        where = str(self.target_file)
        kubeconfig = self.kubeconfig()
        if kubeconfig is not None and not kubeconfig.exists():
            raise ConfigError(f"{where}: field cluster.kubeconfig: {kubeconfig} does not exist")

    def kubeconfig(self) -> Path | None:
        """The kubeconfig file in use (None: the client's default, ~/.kube/config)."""
        named = self.spec.kubeconfig_path()
        if named is not None:
            return named
        env = os.environ.get("KUBECONFIG")
        return Path(env.split(os.pathsep)[0]) if env else None

    @property
    def api(self) -> client.ApiClient:
        """An API client for the target's context (built on first use, not the global default)."""
        if self._api is None:
            kubeconfig = self.kubeconfig()
            try:
                # the loader is untyped; it returns an ApiClient
                self._api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=str(kubeconfig) if kubeconfig else None,
                    context=self.spec.cluster.context,
                )
            except (ConfigException, OSError) as exc:
                raise ConfigError(
                    f"{self.target_file}: field cluster.context: cannot use context "
                    f"{self.spec.cluster.context!r}: {exc}"
                ) from exc
        return self._api

    # what the engine needs to know of the target

    @property
    def kind(self) -> str:
        """``kubernetes``: the fault units' Kubernetes experiments run here."""
        return self.spec.kind

    @property
    def fault_experiments(self) -> dict[str, str]:
        """The target file's ``faults`` entries."""
        return dict(self.spec.faults)

    @property
    def slo_file(self) -> Path | None:
        """The SLO file, relative to the target file."""
        return self.target_file.parent / self.spec.slo if self.spec.slo else None

    def orders(self) -> OrderStore | None:
        """The shop's order store through the gateway (None without an ``orders`` service)."""
        return ShopOrders(self.gateway_url) if "orders" in self.spec.services else None

    # what the experiments need

    def chaos_configuration(self) -> dict[str, str | float | int]:
        """Chaos Toolkit configuration values every Kubernetes experiment reads (``--var``)."""
        c = self.spec.cluster
        return {
            "shakeout_target": self.target,
            "shakeout_namespace": c.namespace,
            "shakeout_shared_key_secret": c.shared_key_secret,
            "shakeout_shared_key_file": c.shared_key_file,
            "shakeout_key_overlap_s": c.key_overlap_s,
            "ready_timeout_s": c.ready_timeout_s,
        }

    def chaos_environment(self) -> dict[str, str]:
        """Environment for ``chaos run``: chaosk8s reads the context and kubeconfig from it."""
        env = {"KUBERNETES_CONTEXT": self.spec.cluster.context}
        kubeconfig = self.kubeconfig()
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        return env

    def fault_skip_reason(self, experiment: Path) -> str | None:
        """Why a fault cannot run on this cluster (Chaos Mesh missing), or None when it can."""
        import json

        tags = json.loads(Path(experiment).read_text(encoding="utf-8")).get("tags", [])
        if "chaos-mesh" not in tags:
            return None
        api = client.ApiextensionsV1Api(self.api)
        for crd in ("networkchaos.chaos-mesh.org", "stresschaos.chaos-mesh.org"):
            try:
                api.read_custom_resource_definition(crd)
            except ApiException as exc:
                if exc.status == 404:
                    return (
                        f"{experiment}: needs Chaos Mesh, which is not installed in context "
                        f"{self.spec.cluster.context!r} (no CRD {crd})"
                    )
                raise
        return None

    # the gateway

    @property
    def gateway_url(self) -> str:
        """Where load and checks reach the gateway; opens the port-forward on first use."""
        if self._gateway_url is None:
            self._gateway_url = self._open_port_forward()
        return self._gateway_url

    def _open_port_forward(self) -> str:
        forward = self.spec.gateway.port_forward
        assert forward is not None  # the model guarantees url or port_forward
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ConfigError(
                f"{self.target_file}: field gateway.port_forward: kubectl is not on PATH "
                "(install it, or give gateway.url instead)"
            )
        port = forward.local_port or _free_port()
        command = [kubectl, "port-forward", "--address", "127.0.0.1", "--context",
                   self.spec.cluster.context, "-n", self.spec.cluster.namespace,
                   f"svc/{forward.service}", f"{port}:{forward.port}"]  # fmt: skip
        kubeconfig = self.kubeconfig()
        if kubeconfig is not None:
            command[1:1] = ["--kubeconfig", str(kubeconfig)]
        self._forward = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + PORT_FORWARD_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._forward.poll() is not None:
                _, raw = self._forward.communicate()
                err = raw.decode(errors="replace")[-2000:]
                self._forward = None
                raise ConfigError(
                    f"{self.target_file}: field gateway.port_forward: kubectl port-forward "
                    f"exited with an error: {err.strip()}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)  # poll the local port until kubectl listens, under the deadline
        self.close()
        raise ConfigError(
            f"{self.target_file}: field gateway.port_forward: port {port} not listening after "
            f"{PORT_FORWARD_TIMEOUT_S:g}s"
        )

    def close(self) -> None:
        """Remove the workers this session started, end the port-forward (if one was opened)
        and the API client."""
        try:
            if self._workers_started:
                self.stop_workers()
        finally:
            if self._forward is not None:
                stop_process(self._forward, signal.SIGTERM, 3.0)
                self._forward = None
                if self.spec.gateway.port_forward is not None:
                    self._gateway_url = None
            if self._api is not None:
                self._api.close()  # type: ignore[no-untyped-call]
                self._api = None

    # in-cluster Locust workers

    @property
    def remote_workers(self) -> int:
        """How many Locust workers a drill's load runs in the cluster (``load.workers``)."""
        return self.spec.load.workers

    def start_workers(self, spec: LoadRunSpec) -> None:
        """Create the ``locust-master`` Service and EndpointSlice and the worker Deployment.

        ``spec`` is the load spec the harness's own master runs with
        (``expect_remote_workers`` = ``load.workers``); its ``SHAKEOUT_*`` options go to every
        worker. Objects of the same names (left by a killed earlier run) are replaced.
        Raises ConfigError naming the target file and field when the target cannot run them.
        """
        load, where = self.spec.load, self.target_file
        if load.workers < 1:
            raise ConfigError(
                f"{where}: field load.workers: is 0, so no worker runs in the cluster"
            )
        if not load.master_address:
            raise ConfigError(
                f"{where}: field load.master_address: required when load.workers is "
                f"{load.workers}: an address of this machine the pods reach (on kind the docker "
                "network's gateway, `docker network inspect kind`)"
            )
        if load.master_port != LOCUST_MASTER_PORT:
            raise ConfigError(
                f"{where}: field load.master_port: {load.master_port} is not supported: the "
                f"harness's Locust master listens on {LOCUST_MASTER_PORT}"
            )
        gateway_url = self.spec.gateway.in_cluster_url
        if not gateway_url:
            raise ConfigError(
                f"{where}: field gateway.in_cluster_url: required when load.workers is "
                f"{load.workers}: the gateway's URL as the pods see it"
            )
        if spec.expect_remote_workers != load.workers:
            raise LoadError(
                f"the load spec expects {spec.expect_remote_workers} remote worker(s) but "
                f"{where} (load.workers) starts {load.workers}"
            )
        manifests = render_locust_manifests(
            spec,
            workers=load.workers,
            master_address=load.master_address,
            gateway_url=gateway_url,
            namespace=self.spec.cluster.namespace,
            image=load.image,
            master_port=load.master_port,
        )
        # Set before the first create: a failure half-way still removes what was created.
        self._workers_started = True
        for body in manifests:
            create_or_replace(self.api, self.spec.cluster.namespace, body)

    def stop_workers(self) -> None:
        """Delete the worker Deployment, the EndpointSlice and the Service (absent is fine).

        Idempotent; a no-op for a target without in-cluster workers that started none.
        """
        if not self._workers_started and self.remote_workers == 0:
            return
        for kind, name in WORKER_OBJECTS:
            delete_and_wait(self.api, self.spec.cluster.namespace, kind, name)
        self._workers_started = False

    # what the engine reads

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Events of the namespace not seen before ``since`` (seq, t, kind, object, message...).

        Each Event is numbered the first time this session sees it, in time order, so ``seq``
        grows across calls as the embedded platform's event numbers do.
        """
        core = client.CoreV1Api(self.api)
        found = core.list_namespaced_event(self.spec.cluster.namespace).items
        fresh = []
        for ev in found:
            key = ev.metadata.uid or f"{ev.metadata.name}/{ev.metadata.resource_version}"
            if key in self._seen:
                continue
            when = (
                ev.last_timestamp
                or ev.event_time
                or ev.first_timestamp
                or ev.metadata.creation_timestamp
            )
            fresh.append((when.timestamp() if when else time.time(), key, ev))
        for t, key, ev in sorted(fresh, key=lambda f: (f[0], f[1])):
            self._seen[key] = len(self._events) + 1
            obj = ev.involved_object
            self._events.append(
                {
                    "seq": len(self._events) + 1,
                    "t": t,
                    "kind": ev.reason or "Event",
                    "type": ev.type,
                    "object": f"{(obj.kind or '').lower()}/{obj.name}",
                    "message": ev.message or "",
                    "count": ev.count or 1,
                }
            )
        return [e for e in self._events if e["seq"] > since]

    def rollout(self, service: str) -> dict[str, Any] | None:
        """The service Deployment's rollout (version/status/reason/started_at/ended_at)."""
        apps = client.AppsV1Api(self.api)
        try:
            dep = apps.read_namespaced_deployment(service, self.spec.cluster.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return rollout_state(dep)

    def steady_state(self) -> tuple[bool, str]:
        """Whether every Deployment of the namespace is available with its desired replicas."""
        apps = client.AppsV1Api(self.api)
        deployments = apps.list_namespaced_deployment(self.spec.cluster.namespace).items
        if not deployments:
            return False, f"no Deployment in namespace {self.spec.cluster.namespace!r}"
        problems = _unavailable(deployments)
        if problems:
            return False, "; ".join(problems)
        return True, f"{len(deployments)} Deployments available"

    def alerting(self) -> AlertSource | str:
        """The cluster's Prometheus and Alertmanager named by the target file (``alerting``);
        notifications are read from Alertmanager's API while the alert is active."""
        spec = self.spec.alerting
        if spec is None:
            return (
                f"{self.target_file}: no alerting.prometheus_url: the cluster's alerts are not read"
            )
        return AlertSource(spec.prometheus_url, spec.alertmanager_url, spec.evaluation_interval_s)

    def __enter__(self) -> KubernetesSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
