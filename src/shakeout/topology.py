"""Target files: what a target is and, for the embedded platform, the topology it runs.

A target file is YAML. ``kind: local`` describes the embedded platform: per service the command
that starts one replica, how many replicas, the health paths and the environment; and the
platform's behaviour (health checks, router retries and ejection, automatic rollback, restart
back-off). ``faults`` may replace the Chaos Toolkit experiment of a fault word (``zone-outage``)
on this target; each fault unit (:mod:`shakeout.faults`) names its own per target kind.
Validation errors name the file and the field. :mod:`shakeout.target` reads a target file of
either kind.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from shakeout._yaml import load_yaml_model
from shakeout.contracts import PaymentsPolicy
from shakeout.errors import did_you_mean
from shakeout.gameday.spec import GameDaySpec
from shakeout.placement import Placement

_NAME = r"^[a-z][a-z0-9-]{0,40}$"
PLACEHOLDERS = ("python", "port", "service", "version", "zone", "replica", "data_dir")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthSpec(_Model):
    """A replica's probes, as a kubelet runs them (compressed for drills).

    Every ``period_s`` the readiness probe GETs ``ready``; one unanswered within ``timeout_s``
    or answering 4xx/5xx fails. ``failure_threshold`` failures in a row take the replica out
    of the endpoints, ``success_threshold`` successes in a row bring it back. With
    ``liveness_failure_threshold`` (0: no liveness probe) the liveness probe GETs ``live``
    each period too, and that many failures in a row kill the replica, which is restarted.
    """

    ready: str = "/readyz"
    live: str = "/healthz"
    period_s: Annotated[float, Field(gt=0, le=30)] = 0.25
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    failure_threshold: Annotated[int, Field(ge=1, le=20)] = 2
    success_threshold: Annotated[int, Field(ge=1, le=20)] = 1
    liveness_failure_threshold: Annotated[int, Field(ge=0, le=100)] = 0


class ServiceSpec(_Model):
    """One service of the topology: how to start a replica and how many to run."""

    command: Annotated[list[str], Field(min_length=1)]
    replicas: Annotated[int, Field(ge=1, le=50)] = 3
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    health: HealthSpec = HealthSpec()
    env: dict[str, str] = {}
    version: str = "v1"
    # Where a replica serves Prometheus metrics (the reference services: /metrics); None: the
    # service is not scraped (the platform's router still counts its answers).
    metrics_path: Annotated[str, Field(pattern=r"^/")] | None = None

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, command: list[str]) -> list[str]:
        for part in command:
            for name in re.findall(r"{(\w+)}", part):
                if name not in PLACEHOLDERS:
                    known = ", ".join(PLACEHOLDERS)
                    raise ValueError(f"unknown placeholder {{{name}}} (known: {known})")
        if not any("{port}" in part for part in command):
            raise ValueError("the command must contain {port}: the platform assigns the port")
        return command


class RouterSpec(_Model):
    """How the router in front of the services behaves (Envoy's names where it has one).

    ``timeout_s`` bounds a whole request, retries included (Envoy's route timeout);
    ``per_try_timeout_s`` bounds each attempt (None: only the whole request's bound), with
    ``per_try_timeouts_s`` per service where one must wait longer (a service whose own
    dependencies take time). A retry is sent only while the retries in flight stay within
    ``retry_budget_pct`` of the service's requests in flight (at least
    ``min_retry_concurrency``), so retries cannot multiply an overload. ``balancer``:
    ``round_robin``, or ``least_request`` (of two replicas picked at random, the one with fewer
    requests in flight; in turn while none has any: a replica that stopped answering collects
    requests and is avoided). ``zone_aware``: a request from a replica (which names its zone
    in ``X-Shakeout-Caller-Zone``) goes to a replica in the same zone while there is one
    (Envoy's zone-aware routing), so a failed zone's dependencies are not on the other
    zones' paths.
    ``safe_routes`` (``"POST /api/cart"``) are retried like idempotent requests: operations
    with no side effect that a method alone does not tell (Envoy's per-route retry policy).
    """

    retries: Annotated[int, Field(ge=0, le=3)] = 1
    eject_after_failures: Annotated[int, Field(ge=0, le=100)] = 3
    ejection_s: Annotated[float, Field(ge=0, le=600)] = 5.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    per_try_timeout_s: Annotated[float, Field(gt=0, le=120)] | None = None
    per_try_timeouts_s: dict[
        Annotated[str, Field(pattern=_NAME)], Annotated[float, Field(gt=0, le=120)]
    ] = {}
    retry_budget_pct: Annotated[float, Field(ge=0, le=100)] = 20.0
    min_retry_concurrency: Annotated[int, Field(ge=0, le=1000)] = 3
    balancer: Literal["round_robin", "least_request"] = "round_robin"
    zone_aware: bool = False
    safe_routes: list[Annotated[str, Field(pattern=r"^[A-Z]+ /\S*$")]] = []

    def per_try(self, service: str) -> float | None:
        """The per-attempt timeout of requests to ``service`` (None: none)."""
        return self.per_try_timeouts_s.get(service, self.per_try_timeout_s)


class AnalysisSpec(_Model):
    """Canary analysis: compare a canary with the stable version, promote or roll it back.

    Each ``interval_s`` the canary's error rate and p95 latency (from the router's per-version
    outcomes) are judged against the thresholds and the stable version's figures. An interval
    with fewer than ``min_samples`` requests of either version is inconclusive. A regression
    rolls the canary back at once; ``healthy_intervals`` healthy intervals in a row promote it.
    Only a canary that shares traffic with the stable version (0 < weight < 1) is analysed:
    a version deployed with all the traffic has nothing to be compared with.
    """

    enabled: bool = False
    interval_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    min_samples: Annotated[int, Field(ge=1, le=100_000)] = 20
    healthy_intervals: Annotated[int, Field(ge=1, le=100)] = 3
    max_error_pct: Annotated[float, Field(ge=0, le=100)] = 5.0
    max_p95_ms: Annotated[float, Field(gt=0, le=600_000)] = 250.0
    max_p95_ratio: Annotated[float, Field(ge=1, le=1000)] = 2.0
    min_p95_delta_ms: Annotated[float, Field(ge=0, le=600_000)] = 50.0
    # Where the figures come from: the router's own outcomes, or PromQL on the replicas'
    # metrics in the platform's Prometheus (as Flagger and Argo Rollouts analyse; the queries
    # are in docs/observability.md and run unchanged on a cluster's Prometheus).
    metrics: Literal["router", "prometheus"] = "router"


class _AsModel:
    """``Annotated`` marker: validate a contract dataclass (``shakeout.contracts``) as a model.

    The model has the dataclass's fields, defaults and bounds (its fields' ``ge``/``gt``/``le``
    metadata) and this file's strictness, so its errors read as every other section's ("Extra
    inputs are not permitted"); the value validated is the dataclass itself.
    """

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """The model's schema, taking and giving instances of ``source``."""
        hints = get_type_hints(source)
        specs: dict[str, Any] = {}
        for spec in dataclasses.fields(source):
            kind = hints[spec.name]
            if dataclasses.is_dataclass(kind):
                kind = Annotated[kind, _AsModel()]
            bounds = {k: v for k, v in spec.metadata.items() if k in ("ge", "gt", "le")}
            specs[spec.name] = (kind, Field(spec.default, **bounds))
        model = create_model(source.__name__, __base__=_Model, **specs)

        def to_contract(value: BaseModel) -> Any:
            return source(**{name: getattr(value, name) for name in specs})

        def from_contract(value: Any) -> Any:
            return dataclasses.asdict(value) if isinstance(value, source) else value

        validated = handler.generate_schema(model)
        return core_schema.no_info_before_validator_function(
            from_contract,
            core_schema.no_info_after_validator_function(to_contract, validated),
            serialization=core_schema.plain_serializer_function_ser_schema(dataclasses.asdict),
        )


class DependenciesSpec(_Model):
    """Resilience of the gateway toward its dependencies (payments, the external provider)."""

    payments: Annotated[PaymentsPolicy, _AsModel()] = PaymentsPolicy()

    def gateway_env(self) -> dict[str, str]:
        """Environment of gateway replicas that carries this policy (read by the gateway)."""
        return self.payments.to_env()


class AutoscaleBounds(_Model):
    """Replica bounds of one autoscaled service."""

    min: Annotated[int, Field(ge=1, le=50)] = 1
    max: Annotated[int, Field(ge=1, le=50)] = 10

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleBounds:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class AutoscalerSpec(_Model):
    """The autoscaler: replicas of a service follow its load (HPA-like, compressed in time).

    Desired replicas = ceil(requests per second over ``window_s`` / (capacity per replica x
    ``target_utilization``)), within the service's bounds. Scale-up is immediate (then
    ``scale_up_cooldown_s``); scale-down goes to the highest recommendation of the last
    ``scale_down_delay_s`` (stabilisation window), so a dip does not drop capacity.
    """

    enabled: bool = False
    services: dict[Annotated[str, Field(pattern=_NAME)], AutoscaleBounds] = {}
    target_utilization: Annotated[float, Field(gt=0, le=1)] = 0.6
    window_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    scale_up_cooldown_s: Annotated[float, Field(ge=0, le=3600)] = 2.0
    scale_down_delay_s: Annotated[float, Field(ge=0, le=3600)] = 15.0


class RolloutSpec(_Model):
    """How a new version is watched once deployed (Kubernetes' progress deadline, compressed)."""

    auto_rollback: bool = True
    progress_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 8.0
    max_restarts: Annotated[int, Field(ge=1, le=100)] = 3
    analysis: AnalysisSpec = AnalysisSpec()
    # Alerts whose firing rolls back releases in progress (the brief's rollback on a burn-rate
    # alert): those of the alert's `service`, or every one when it names no service in rollout.
    rollback_on_alerts: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = []
    # A release taking all the traffic: new replicas beside the old until promoted (surge), or
    # the old stopped before the new exist (Kubernetes' Recreate). A canary always surges.
    strategy: Literal["surge", "recreate"] = "surge"


class BackoffSpec(_Model):
    """Restart back-off of a crashed replica (CrashLoopBackOff, compressed)."""

    initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_s: Annotated[float, Field(gt=0, le=600)] = 8.0
    reset_after_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class ConfigRolloutSpec(_Model):
    """How a live config change (feature flags) reaches the services."""

    validation: bool = True
    """Refuse unknown flags and values outside a flag's allowed list (config_rejected)."""
    staged: bool = True
    """Apply to the canary zones first and watch them before applying everywhere."""
    canary_zones: Annotated[int, Field(ge=1, le=10)] = 1
    bake_s: Annotated[float, Field(ge=0, le=300)] = 3.0
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    min_requests: Annotated[int, Field(ge=0, le=100_000)] = 5
    auto_rollback: bool = True
    """A staged config whose canary zones turn unready or error is rolled back to the last good."""
    live_reload: bool = True
    """Services pick changes up while running; off: unstaged changes restart the flag's service."""


class SecretsSpec(_Model):
    """How services fetch and cache the shared key from the secret store."""

    refresh_s: Annotated[float, Field(gt=0, le=60)] = 0.2
    """How often a replica polls the store."""
    cache_ttl_s: Annotated[float, Field(ge=0, le=86400)] = 300.0
    """How long a replica keeps serving with its cached key while the store is unreachable."""
    refetch_on_unknown_key: bool = True
    """A replica presented a key it does not know re-reads the store once before refusing: a
    caller that polled the store first may already sign with a freshly rotated key."""


class MigrationSpec(_Model):
    """How the platform migrates the orders store's schema."""

    mode: Literal["online", "offline"] = "online"
    step_pause_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    batch_rows: Annotated[int, Field(ge=1, le=100_000)] = 200


class NodesSpec(_Model):
    """How the control plane learns the zones' health: every ``heartbeat_s`` each zone's node
    sends a heartbeat; one silent for ``grace_s`` is not ready (Kubernetes: 10 s and 40 s,
    compressed for drills)."""

    heartbeat_s: Annotated[float, Field(gt=0, le=60)] = 0.2
    grace_s: Annotated[float, Field(gt=0, le=600)] = 1.0


class DisruptionBudget(_Model):
    """A PodDisruptionBudget: a voluntary eviction (a node drain) of a ready replica is refused
    while it would leave more than ``max_unavailable`` of the service's replicas unready."""

    max_unavailable: Annotated[int, Field(ge=0, le=50)] = 1


class ObservabilitySpec(_Model):
    """Prometheus and Alertmanager beside the platform (``docs/observability.md``).

    ``prometheus: auto`` starts both with the platform when their binaries are on PATH
    (Debian's ``prometheus`` and ``prometheus-alertmanager``); without them the platform runs
    and the alert steps are skipped with the reason. ``rules``: ``slo`` generates the alert
    rules from the target's SLO file (``shakeout rules``), anything else is a rule file
    (relative to the target file). ``alertmanager``: ``generated`` routes every alert to
    ``receiver`` (a webhook into the platform that records what it got), anything else is an
    Alertmanager config file (relative to the target file).
    """

    prometheus: Literal["auto", "off"] = "auto"
    scrape_interval_s: Annotated[float, Field(ge=0.1, le=60)] = 1.0

    @field_validator("prometheus", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false (and `on` as true): take them as meant.
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value

    evaluation_interval_s: Annotated[float, Field(ge=0.1, le=60)] = 1.0
    rules: str = "slo"
    alertmanager: str = "generated"
    receiver: Annotated[str, Field(pattern=_NAME)] = "oncall"


class PlatformSpec(_Model):
    """Behaviour of the embedded platform as a whole."""

    zones: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1)] = [
        "a",
        "b",
        "c",
    ]
    health_checks: bool = True
    # How a replica is frozen: "auto" (a cgroup v2 freezer where the machine offers a writable
    # hierarchy, as a container runtime does; else SIGSTOP to its process group) or
    # "process-group" (always SIGSTOP to the process group).
    freezer: Literal["auto", "process-group"] = "auto"
    nodes: NodesSpec = NodesSpec()
    # A change of a replica's readiness reaches the router this much later (endpoint updates
    # propagating through a cluster); 0: at once.
    endpoints_delay_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    router: RouterSpec = RouterSpec()
    rollout: RolloutSpec = RolloutSpec()
    restart_backoff: BackoffSpec = BackoffSpec()
    control_port: Annotated[int, Field(ge=0, le=65535)] = 0
    key_overlap_s: Annotated[float, Field(ge=0, le=86400)] = 30.0
    ready_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    gateway: str = "gateway"
    config: ConfigRolloutSpec = ConfigRolloutSpec()
    secrets: SecretsSpec = SecretsSpec()
    migration: MigrationSpec = MigrationSpec()
    dependencies: DependenciesSpec = DependenciesSpec()
    # Requests per second one replica of a service can serve; beyond it the replica answers 503
    # at once (saturated). A service not listed has no limit.
    capacity: dict[Annotated[str, Field(pattern=_NAME)], Annotated[float, Field(gt=0)]] = {}
    autoscaler: AutoscalerSpec = AutoscalerSpec()
    observability: ObservabilitySpec = ObservabilitySpec()
    disruption_budgets: dict[Annotated[str, Field(pattern=_NAME)], DisruptionBudget] = {}


class LocalTarget(_Model):
    """A target file of kind ``local``: the embedded platform on this machine."""

    name: Annotated[str, Field(pattern=_NAME)]
    kind: Literal["local"]
    description: str = ""
    platform: PlatformSpec = PlatformSpec()
    services: dict[Annotated[str, Field(pattern=_NAME)], ServiceSpec]
    faults: dict[Annotated[str, Field(pattern=_NAME)], str] = {}
    slo: str | None = None
    game_day: GameDaySpec = GameDaySpec()

    @model_validator(mode="after")
    def _gateway_exists(self) -> LocalTarget:
        if self.platform.gateway not in self.services:
            raise ValueError(
                f"platform.gateway names {self.platform.gateway!r}, which is not in services: "
                "it is the service that load and checks go to (through the router), default "
                f"'gateway'; services here: {', '.join(self.services)}"
                + did_you_mean(self.platform.gateway, self.services)
            )
        ports = [s.port for s in self.services.values() if s.port]
        if len(ports) != len(set(ports)):
            raise ValueError("two services ask for the same port")
        return self

    @model_validator(mode="after")
    def _named_services_exist(self) -> LocalTarget:
        platform = self.platform
        named: dict[str, Mapping[str, object]] = {
            "platform.capacity": platform.capacity,
            "platform.router.per_try_timeouts_s": platform.router.per_try_timeouts_s,
            "platform.autoscaler.services": platform.autoscaler.services,
            "platform.disruption_budgets": platform.disruption_budgets,
        }
        for field, names in named.items():
            for name in names:
                if name not in self.services:
                    raise ValueError(f"{field} names {name!r}, which is not in services")
        for name in platform.autoscaler.services:
            if name not in platform.capacity:
                raise ValueError(
                    f"platform.autoscaler.services.{name}: the autoscaler needs"
                    f" platform.capacity.{name} (requests per second per replica)"
                )
        return self

    @property
    def gateway(self) -> str:
        """Name of the service that is the public entry point."""
        return self.platform.gateway

    def placement(self) -> Placement:
        """Replicas per service and zones, as the embedded platform places them."""
        config = self.platform.config
        return Placement(
            zones=tuple(self.platform.zones),
            replicas={name: spec.replicas for name, spec in self.services.items()},
            config_first_zones=(
                tuple(self.platform.zones[: config.canary_zones]) if config.staged else ()
            ),
            migration=self.platform.migration.mode,
        )


def load_target(path: Path | str) -> LocalTarget:
    """Read and validate a target file; errors name the file, line and field."""
    return load_yaml_model(path, LocalTarget, "target file")


def expand(template: str, values: dict[str, str]) -> str:
    """Fill ``{placeholder}`` fields of a command or environment value."""
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), m.group(0)), template)


def python_executable() -> str:
    """The interpreter that runs ShakeOut, substituted for ``{python}``."""
    return sys.executable
