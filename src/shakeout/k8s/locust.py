"""In-cluster Locust workers driven by the harness's own Locust master.

How the per-request stream reaches the harness: the harness runs the Locust master locally,
as for the embedded platform, with ``LoadSpec(expect_remote_workers=N, master_bind_host=...)``
(``shakeout.load``). The workers run in the cluster and connect to it; each worker sends its
request records to the master through Locust's own messaging (``shakeout.loadworker.capture``),
and the master appends them to ``requests.tsv`` in the run folder, which the harness reads live
(stop conditions and verdicts work unchanged). The cluster reaches the master through a Service
without a selector, ``locust-master``, whose EndpointSlice holds the harness's address as the
pods see it (on kind, the docker network's gateway). The other option, an in-cluster master whose
``requests.tsv`` is copied back at the end, was rejected: no live stream, so no stop condition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shakeout.errors import ConfigError
from shakeout.load import LoadSpec

WORKER_LABELS = {"app.kubernetes.io/name": "locust-worker", "app.kubernetes.io/part-of": "shakeout"}


def _in_image(profile: Path) -> str:
    """The profile's path inside the image, which holds the repository at /app."""
    if profile.is_absolute():
        try:
            return profile.relative_to(Path.cwd()).as_posix()
        except ValueError as exc:
            raise ConfigError(
                f"load profile {profile} is outside the repository, so it is not in the image"
            ) from exc
    return profile.as_posix()


def render_locust_manifests(
    spec: LoadSpec,
    *,
    workers: int,
    master_address: str,
    gateway_url: str,
    namespace: str,
    image: str = "shakeout/shop:dev",
    master_port: int = 5557,
) -> list[dict[str, Any]]:
    """The ``locust-master`` Service and EndpointSlice and the worker Deployment, as dicts.

    ``spec`` is the same load spec the harness's master runs with; its ``SHAKEOUT_*`` options
    go to every worker (each takes 1/``workers`` of the rate). ``gateway_url`` is the gateway
    as the pods see it (the target's ``gateway.in_cluster_url``).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    env = {**spec.environment(), "SHAKEOUT_WORKERS": str(workers)}
    master = {"app.kubernetes.io/name": "locust-master", "app.kubernetes.io/part-of": "shakeout"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "locust-master", "namespace": namespace, "labels": master},
        "spec": {"ports": [{"name": "locust", "port": master_port, "targetPort": master_port}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "locust-master-harness",
            "namespace": namespace,
            "labels": {**master, "kubernetes.io/service-name": "locust-master"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [master_address]}],
        "ports": [{"name": "locust", "port": master_port, "protocol": "TCP"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "locust-worker", "namespace": namespace, "labels": WORKER_LABELS},
        "spec": {
            "replicas": workers,
            "selector": {"matchLabels": WORKER_LABELS},
            "template": {
                "metadata": {"labels": WORKER_LABELS},
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                "python",
                                "-m",
                                "locust",
                                "-f",
                                f"/app/{_in_image(spec.profile)}",
                                "--worker",
                                "--master-host",
                                "locust-master",
                                "--master-port",
                                str(master_port),
                                "--host",
                                gateway_url,
                                "--loglevel",
                                "WARNING",
                            ],
                            "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                        }
                    ]
                },
            },
        },
    }
    return [service, endpoints, deployment]
