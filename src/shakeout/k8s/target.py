"""Target files of kind ``kubernetes``: which cluster, which namespace, how load reaches it.

A Kubernetes target names a kubeconfig context and a namespace, the allowlists both must be
on, the production-name patterns that are refused without an explicit flag, how the harness
reaches the gateway (a URL, or a port-forward it opens), the expected topology (zones and
replicas, for the same blast-radius cap as the local target) and experiments that replace a
fault unit's own (``faults``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shakeout._yaml import load_yaml_model
from shakeout.errors import ConfigError
from shakeout.gameday.spec import GameDaySpec
from shakeout.placement import Placement

_NAME = r"^[a-z][a-z0-9-]{0,40}$"
# A DNS-1123 label: what Kubernetes accepts as a namespace name.
_NAMESPACE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DEFAULT_PRODUCTION_PATTERNS = (r"prod", r"prd", r"live")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSpec(_Model):
    """Where the target lives and what the harness may touch there."""

    kubeconfig: str | None = None
    context: Annotated[str, Field(min_length=1)]
    namespace: Annotated[str, Field(pattern=_NAMESPACE)]
    allowed_contexts: Annotated[list[str], Field(min_length=1)]
    allowed_namespaces: Annotated[
        list[Annotated[str, Field(pattern=_NAMESPACE)]], Field(min_length=1)
    ]
    production_patterns: list[str] = list(DEFAULT_PRODUCTION_PATTERNS)
    shared_key_secret: str = "shakeout-shared-key"
    shared_key_file: str = "key.json"
    key_overlap_s: Annotated[float, Field(ge=0, le=86400)] = 120.0
    ready_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 180.0

    @field_validator("production_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        return patterns


class PortForwardSpec(_Model):
    """A ``kubectl port-forward`` the harness opens to a Service for the run."""

    service: str = "gateway"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    local_port: Annotated[int, Field(ge=0, le=65535)] = 0


class GatewaySpec(_Model):
    """How load and checks reach the gateway: exactly one of ``url`` and ``port_forward``."""

    url: str | None = None
    port_forward: PortForwardSpec | None = None
    in_cluster_url: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> GatewaySpec:
        if (self.url is None) == (self.port_forward is None):
            raise ValueError("give exactly one of gateway.url and gateway.port_forward")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"gateway.url {self.url!r} must start with http:// or https://")
        return self


class LoadSpec(_Model):
    """In-cluster Locust workers (see :mod:`shakeout.k8s.locust`)."""

    workers: Annotated[int, Field(ge=0, le=200)] = 0
    image: str = "shakeout/shop:dev"
    master_address: str | None = None
    master_port: Annotated[int, Field(ge=1, le=65535)] = 5557


class AlertingSpec(_Model):
    """The cluster's own Prometheus and Alertmanager, read by the alert steps (reachable from
    where ShakeOut runs: an ingress, or a ``kubectl port-forward`` you keep open)."""

    prometheus_url: str
    alertmanager_url: str | None = None
    evaluation_interval_s: Annotated[float, Field(gt=0, le=600)] = 30.0

    @model_validator(mode="after")
    def _http(self) -> AlertingSpec:
        for name in ("prometheus_url", "alertmanager_url"):
            value = getattr(self, name)
            if value is not None and not re.match(r"^https?://", value):
                raise ValueError(f"alerting.{name} {value!r} must start with http:// or https://")
        return self


class ServiceReplicas(_Model):
    """How many replicas a service's Deployment runs (for the blast-radius cap)."""

    replicas: Annotated[int, Field(ge=1, le=500)] = 2


class KubernetesTarget(_Model):
    """A target file of kind ``kubernetes``."""

    name: Annotated[str, Field(pattern=_NAME)]
    kind: Literal["kubernetes"]
    description: str = ""
    cluster: ClusterSpec
    gateway: GatewaySpec
    load: LoadSpec = LoadSpec()
    zones: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1)] = [
        "a",
        "b",
        "c",
    ]
    services: dict[Annotated[str, Field(pattern=_NAME)], ServiceReplicas]
    faults: dict[Annotated[str, Field(pattern=_NAME)], str] = {}
    slo: str | None = None
    alerting: AlertingSpec | None = None  # None: the alert steps skip, saying so
    game_day: GameDaySpec = GameDaySpec()

    def placement(self) -> Placement:
        """The expected replicas per Deployment over the zones: a cluster places pods its
        own way, so the ids are the embedded platform's names for the same counts; the
        blast-radius cap (``--max-replicas``) reads the counts."""
        return Placement(
            zones=tuple(self.zones),
            replicas={name: svc.replicas for name, svc in self.services.items()},
        )

    def kubeconfig_path(self) -> Path | None:
        """The kubeconfig file named by the target (None: $KUBECONFIG or ~/.kube/config)."""
        return Path(self.cluster.kubeconfig).expanduser() if self.cluster.kubeconfig else None


def load_kubernetes_target(path: Path | str) -> KubernetesTarget:
    """Read a ``kind: kubernetes`` target file; errors name the file, line and field."""
    return load_yaml_model(path, KubernetesTarget, "target file")


def check_allowlists(target: KubernetesTarget, target_file: Path, allow_production: bool) -> None:
    """Refuse a context or namespace off the allowlists, or a production-looking context
    without ``allow_production``: read from the file alone, before any API call."""
    c = target.cluster
    where = str(target_file)
    if c.context not in c.allowed_contexts:
        raise ConfigError(
            f"{where}: field cluster.context: {c.context!r} is not in cluster.allowed_contexts "
            f"{c.allowed_contexts}: add it there if drills may really run against it"
        )
    if c.namespace not in c.allowed_namespaces:
        raise ConfigError(
            f"{where}: field cluster.namespace: {c.namespace!r} is not in "
            f"cluster.allowed_namespaces {c.allowed_namespaces}"
        )
    names = {"cluster.context": c.context}
    if target.alerting is not None:  # the alerting a drill reads is held to the same rules
        names["alerting.prometheus_url"] = target.alerting.prometheus_url
        if target.alerting.alertmanager_url:
            names["alerting.alertmanager_url"] = target.alerting.alertmanager_url
    for field_name, value in names.items():
        for pattern in c.production_patterns:
            if re.search(pattern, value, re.IGNORECASE) and not allow_production:
                raise ConfigError(
                    f"{where}: field {field_name}: {value!r} matches the production "
                    f"pattern {pattern!r} (cluster.production_patterns); refusing to inject "
                    "faults there without --allow-production"
                )
