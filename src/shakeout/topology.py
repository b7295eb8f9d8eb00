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
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shakeout.errors import ConfigError

_NAME = r"^[a-z][a-z0-9-]{0,40}$"
M = TypeVar("M", bound=BaseModel)
PLACEHOLDERS = ("python", "port", "service", "version", "zone", "replica", "data_dir")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthSpec(_Model):
    """Where a replica answers liveness and readiness probes."""

    ready: str = "/readyz"
    live: str = "/healthz"
    period_s: Annotated[float, Field(gt=0, le=30)] = 0.25
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    failure_threshold: Annotated[int, Field(ge=1, le=20)] = 2


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
    """How the router in front of the services behaves."""

    retries: Annotated[int, Field(ge=0, le=3)] = 1
    eject_after_failures: Annotated[int, Field(ge=0, le=100)] = 3
    ejection_s: Annotated[float, Field(ge=0, le=600)] = 5.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0


class RolloutSpec(_Model):
    """How a new version is watched once deployed (Kubernetes' progress deadline, compressed)."""

    auto_rollback: bool = True
    progress_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 8.0
    max_restarts: Annotated[int, Field(ge=1, le=100)] = 3


class BackoffSpec(_Model):
    """Restart back-off of a crashed replica (CrashLoopBackOff, compressed)."""

    initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_s: Annotated[float, Field(gt=0, le=600)] = 8.0
    reset_after_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class PlatformSpec(_Model):
    """Behaviour of the embedded platform as a whole."""

    zones: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1)] = [
        "a",
        "b",
        "c",
    ]
    health_checks: bool = True
    router: RouterSpec = RouterSpec()
    rollout: RolloutSpec = RolloutSpec()
    restart_backoff: BackoffSpec = BackoffSpec()
    control_port: Annotated[int, Field(ge=0, le=65535)] = 0
    key_overlap_s: Annotated[float, Field(ge=0, le=86400)] = 30.0
    ready_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    gateway: str = "gateway"


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


def expand(template: str, values: dict[str, str]) -> str:
    """Fill ``{placeholder}`` fields of a command or environment value."""
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), m.group(0)), template)


def python_executable() -> str:
    """The interpreter that runs ShakeOut, substituted for ``{python}``."""
    return sys.executable
