"""Target files: what a target is and, for the embedded platform, the topology it runs.

A target file is YAML. ``kind: local`` describes the embedded platform: per service the command
that starts one replica, how many replicas, the health paths and the environment; and the
platform's behaviour (health checks, router retries and ejection, automatic rollback, restart
back-off). ``faults`` maps the fault words features use (``zone-outage``) to the Chaos Toolkit
experiments that implement them on this target. Validation errors name the file and the field.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shakeout.errors import ConfigError

if TYPE_CHECKING:
    from shakeout.k8s.target import KubernetesTarget

_NAME = r"^[a-z][a-z0-9-]{0,40}$"
M = TypeVar("M", bound=BaseModel)
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
    ``round_robin``, or ``least_request`` (the replica with the fewest requests in flight, ties
    in turn: a replica that stopped answering collects requests and is avoided).
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


class BreakerSpec(_Model):
    """A circuit breaker: ``failures`` consecutive failed calls open it for ``open_s``."""

    failures: Annotated[int, Field(ge=0, le=1000)] = 0
    open_s: Annotated[float, Field(gt=0, le=600)] = 5.0


class PaymentsPolicy(_Model):
    """How the gateway calls payments: timeout, retries, breaker, degradation."""

    timeout_ms: Annotated[int, Field(ge=1, le=120_000)] | None = None
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    retry_backoff_ms: Annotated[float, Field(ge=0, le=10_000)] = 20.0
    breaker: BreakerSpec = BreakerSpec()
    defer_on_failure: bool = False


class DependenciesSpec(_Model):
    """Resilience of the gateway toward its dependencies (payments, the external provider)."""

    payments: PaymentsPolicy = PaymentsPolicy()

    def gateway_env(self) -> dict[str, str]:
        """Environment of gateway replicas that carries this policy (read by the gateway)."""
        pay = self.payments
        env = {
            "SHAKEOUT_PAYMENTS_RETRIES": str(pay.retries),
            "SHAKEOUT_PAYMENTS_RETRY_BACKOFF_MS": f"{pay.retry_backoff_ms:g}",
            "SHAKEOUT_BREAKER_FAILURES": str(pay.breaker.failures),
            "SHAKEOUT_BREAKER_OPEN_S": f"{pay.breaker.open_s:g}",
            "SHAKEOUT_PAYMENTS_DEFER": "1" if pay.defer_on_failure else "0",
        }
        if pay.timeout_ms is not None:
            env["SHAKEOUT_PAYMENTS_TIMEOUT_MS"] = str(pay.timeout_ms)
        return env


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


class LocalTarget(_Model):
    """A target file of kind ``local``: the embedded platform on this machine."""

    name: Annotated[str, Field(pattern=_NAME)]
    kind: Literal["local"]
    description: str = ""
    platform: PlatformSpec = PlatformSpec()
    services: dict[Annotated[str, Field(pattern=_NAME)], ServiceSpec]
    faults: dict[Annotated[str, Field(pattern=_NAME)], str] = {}
    slo: str | None = None

    @model_validator(mode="after")
    def _gateway_exists(self) -> LocalTarget:
        if self.platform.gateway not in self.services:
            raise ValueError(
                f"platform.gateway names {self.platform.gateway!r}, which is not in services"
            )
        ports = [s.port for s in self.services.values() if s.port]
        if len(ports) != len(set(ports)):
            raise ValueError("two services ask for the same port")
        return self

    @model_validator(mode="after")
    def _capacity_services_exist(self) -> LocalTarget:
        for name in self.platform.capacity:
            if name not in self.services:
                raise ValueError(f"platform.capacity names {name!r}, which is not in services")
        for name in self.platform.router.per_try_timeouts_s:
            if name not in self.services:
                raise ValueError(
                    f"platform.router.per_try_timeouts_s names {name!r}, which is not in services"
                )
        for name in self.platform.autoscaler.services:
            if name not in self.services:
                raise ValueError(
                    f"platform.autoscaler.services names {name!r}, which is not in services"
                )
            if name not in self.platform.capacity:
                raise ValueError(
                    f"platform.autoscaler.services.{name}: the autoscaler needs"
                    f" platform.capacity.{name} (requests per second per replica)"
                )
        return self

    @property
    def gateway(self) -> str:
        """Name of the service that is the public entry point."""
        return self.platform.gateway


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number of a field path in a YAML document."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_yaml_model(path: Path | str, model: type[M], kind: str) -> M:
    """Read a YAML file into a validated model; errors name the file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {kind}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {kind} must be a YAML mapping")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(text, loc)
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: field {_field_path(loc)}: {err['msg']}")
        raise ConfigError(f"invalid {kind}\n  " + "\n  ".join(problems)) from None


def load_target(path: Path | str) -> LocalTarget:
    """Read and validate a target file; errors name the file, line and field."""
    return load_yaml_model(path, LocalTarget, "target file")


def load_any_target(path: Path | str) -> LocalTarget | KubernetesTarget:
    """Read a target file of either kind: ``local`` (embedded platform) or ``kubernetes``.

    ``load_target`` stays local-only (the platform and plan code take a ``LocalTarget``);
    callers that accept a cluster target use this and branch on the returned type.
    """
    from shakeout.k8s.target import KubernetesTarget

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        data = None  # load_target reports an unreadable or invalid file with its location
    if isinstance(data, dict) and data.get("kind") == "kubernetes":
        return load_yaml_model(path, KubernetesTarget, "target file")
    return load_target(path)


def expand(template: str, values: dict[str, str]) -> str:
    """Fill ``{placeholder}`` fields of a command or environment value."""
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), m.group(0)), template)


def python_executable() -> str:
    """The interpreter that runs ShakeOut, substituted for ``{python}``."""
    return sys.executable
