"""``shakeout init``: everything a team needs to drill its own service, written as files.

Given a service's command (or several services), its health path, replicas, zones and the
endpoints worth loading, it writes a target file and its fragile variant (the negative
control), an SLO file, a load profile with one journey per endpoint and a starter feature with
two drills (a replica's node lost, a zone down). Each file is checked (:func:`shakeout.check.
check_run`) before the command ends, and is meant to be read and edited: every setting is
commented. docs/your-service.md walks through it.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from shakeout.check import check_run
from shakeout.errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_JOURNEY = re.compile(r"^(?P<name>[a-z][a-z0-9_]{0,40})=(?P<method>[A-Z]+) (?P<path>/\S*)$")

_console = Console(soft_wrap=True)


@dataclass(frozen=True)
class Journey:
    """One endpoint the load calls: ``name=METHOD /path``."""

    name: str
    method: str
    path: str


@dataclass(frozen=True)
class Service:
    """One service: its name and the command that starts a replica (with ``{port}``)."""

    name: str
    command: list[str]


@dataclass(frozen=True)
class Spec:
    """What ``shakeout init`` was asked for."""

    name: str
    services: list[Service]
    health: str
    replicas: int
    zones: list[str]
    journeys: list[Journey]
    rate: int

    @property
    def gateway(self) -> str:
        """The service load and checks go to: the first one."""
        return self.services[0].name


def _service(text: str, default_name: str) -> Service:
    name, sep, command = text.partition("=")
    if not sep or " " in name or not _NAME.match(name):
        name, command = default_name, text
    words = shlex.split(command)
    if not words:
        raise ConfigError(f"--service {text!r}: no command")
    if not any("{port}" in w for w in words):
        raise ConfigError(
            f"--service {text!r}: the command must contain {{port}}, the port each replica "
            "is given (e.g. --port {port})"
        )
    return Service(name, words)


def _journey(text: str) -> Journey:
    found = _JOURNEY.match(text)
    if found is None:
        raise ConfigError(
            f"--journey {text!r}: write NAME=METHOD /PATH, e.g. 'get=GET /get' (a name of "
            "lower-case letters, digits and _)"
        )
    return Journey(found["name"], found["method"], found["path"])


def spec_from_args(args: argparse.Namespace) -> Spec:
    """The request, checked: names, commands, zones, journeys."""
    if not _NAME.match(args.name):
        raise ConfigError(f"name {args.name!r}: lower-case letters, digits and -, from a letter")
    texts = args.service or []
    services = [_service(t, args.name) for t in texts]
    if not services:
        raise ConfigError("give the service's command: --service 'NAME=COMMAND --port {port}'")
    names = [s.name for s in services]
    if len(set(names)) != len(names):
        raise ConfigError(f"two services share a name: {names}")
    zones = [z.strip() for z in args.zones.split(",") if z.strip()]
    if not zones or not all(_NAME.match(z) for z in zones):
        raise ConfigError(f"--zones {args.zones!r}: comma-separated names such as a,b,c")
    if args.replicas < len(zones):
        raise ConfigError(
            f"--replicas {args.replicas}: at least one per zone ({len(zones)}), or a zone "
            "drill takes the service down"
        )
    journeys = [_journey(t) for t in args.journey or ["home=GET /"]]
    if len({j.name for j in journeys}) != len(journeys):
        raise ConfigError("two journeys share a name")
    if not args.health.startswith("/"):
        raise ConfigError(f"--health {args.health!r}: a path such as /healthz")
    return Spec(args.name, services, args.health, args.replicas, zones, journeys, args.rate)


def _target(spec: Spec, fragile: bool) -> str:
    name = f"{spec.name}-fragile" if fragile else spec.name
    services = {
        s.name: {
            "command": s.command,
            "replicas": spec.replicas,
            "health": {"ready": spec.health, "live": spec.health},
        }
        for s in spec.services
    }
    head = (
        f"# FRAGILE variant of {spec.name}.yaml: the negative control of every drill. Health\n"
        "# checks, retries and ejection are off, so a drill that passes on both proves nothing.\n"
        if fragile
        else f"# {spec.name} on ShakeOut's embedded platform (written by `shakeout init`; edit "
        "freely).\n# Each service runs as local processes spread over the zones, behind a "
        "router.\n"
    )
    router = (
        "  router:\n"
        "    retries: 0                 # no retry\n"
        "    eject_after_failures: 0    # never eject\n"
        "    timeout_s: 5\n"
        "    balancer: round_robin      # a replica that stopped answering keeps its turn\n"
        if fragile
        else "  router:\n"
        "    retries: 1                 # an idempotent request (GET, ...) is retried once,\n"
        "                               # in another zone first\n"
        "    eject_after_failures: 3    # consecutive failures before a replica is ejected\n"
        "    ejection_s: 5\n"
        "    timeout_s: 5               # a whole request, retries included\n"
        "    per_try_timeout_s: 1       # each attempt\n"
        "    balancer: least_request    # of two replicas, the one with fewer in flight\n"
    )
    return (
        head
        + f"name: {name}\n"
        + "kind: local\n"
        + f"slo: {spec.name}.slo.yaml   # relative to this file\n"
        + "platform:\n"
        + f"  zones: [{', '.join(spec.zones)}]\n"
        + f"  gateway: {spec.gateway}".ljust(31)
        + "# the service load and checks go to, through the router\n"
        + "  ready_timeout_s: 60          # every replica ready (health path 2xx/3xx) by then\n"
        + (
            "  health_checks: false         # every started replica gets traffic, ready or not\n"
            if fragile
            else "  health_checks: true          # only ready replicas get traffic\n"
        )
        + router
        + "  restart_backoff: {initial_s: 0.5, max_s: 8, reset_after_s: 10}\n"
        + "# Per service: the command of one replica ({port} is filled in, as are {zone},\n"
        + "# {replica} and {python}), replicas (spread over the zones) and the health paths\n"
        + "# (readiness decides traffic; liveness, off unless\n"
        + "# health.liveness_failure_threshold > 0, restarts a replica).\n"
        + yaml.safe_dump({"services": services}, sort_keys=False, width=200)
    )


def _slo(spec: Spec) -> str:
    latency = "".join(
        f"  - {{journey: {j.name}, percentile: 95, below_ms: 250}}\n" for j in spec.journeys
    )
    errors = "".join(f"  - {{journey: {j.name}, below_pct: 1}}\n" for j in spec.journeys)
    return (
        f"# Objectives of {spec.name}, compressed for drills (seconds, not hours). Written by\n"
        "# `shakeout init`: tighten them to what your service promises.\n"
        f"latency:\n{latency}"
        f"error_rate:\n{errors}"
        "availability:\n"
        "  - {journey: all, above_pct: 99}   # every request of the drill together\n"
        "phases: [drill, fault]\n"
        "error_budget:\n"
        "  availability_pct: 99            # 1% of requests may fail over a drill\n"
        "  windows:                        # multi-window burn rate (1 h / 6 h in production)\n"
        "    - {long_s: 10, short_s: 2, factor: 14.4}\n"
        "recovery_s: 10                    # each journey's objectives hold again within this\n"
        "                                  # of the fault's start\n"
    )


def _profile(spec: Spec) -> str:
    functions = []
    for j in spec.journeys:
        call = f'user.client.request("{j.method}", "{j.path}", name="{j.name}", context=context)'
        functions.append(
            f"def {j.name}(user: ShakeoutUser, context: dict[str, Any]) -> None:\n"
            f'    """{j.method} {j.path}"""\n'
            f"    {call}\n"
        )
    weights = ", ".join(f"(1, {j.name})" for j in spec.journeys)
    return (
        f'"""Load for {spec.name}: one journey per endpoint, equal weights, at a steady rate.\n'
        "\n"
        "Written by `shakeout init`. A journey's name is the `name=` of its requests: objectives\n"
        f'name it (`the "{spec.journeys[0].name}" journey`). Runs on its own too:\n'
        f"`locust -f {spec.name}.py --headless --host http://127.0.0.1:PORT` (see docs/load.md).\n"
        '"""\n'
        "\n"
        "from __future__ import annotations\n"
        "\n"
        "from typing import Any\n"
        "\n"
        "from shakeout.loadworker.shapes import Steady\n"
        "from shakeout.loadworker.users import ShakeoutShape, ShakeoutUser\n"
        "\n\n" + "\n\n".join(functions) + "\n\n"
        f"class {spec.name.title().replace('-', '')}Client(ShakeoutUser):\n"
        f'    """A client of {spec.name}."""\n'
        "\n"
        f"    journeys = [{weights}]  # noqa: RUF012\n"
        "\n\n"
        "class SteadyShape(ShakeoutShape):\n"
        '    """The journeys at `--shakeout-rate` for `--shakeout-duration` s."""\n'
        "\n"
        "    def build(self, options: Any) -> Steady:\n"
        '        """The shape from the parsed options."""\n'
        "        return Steady(options.shakeout_rate, options.shakeout_duration)\n"
    )


def _feature(spec: Spec) -> str:
    service = spec.gateway
    zone = spec.zones[1] if len(spec.zones) > 1 else spec.zones[0]
    checks = "".join(
        f'    {"Then" if i == 0 else "And"} the "{j.name}" journey\'s error rate stays below 1%\n'
        for i, j in enumerate(spec.journeys)
    )
    first = spec.journeys[0].name
    return (
        f"@{spec.name}\n"
        f"Feature: {spec.name} keeps answering when a replica or a zone is lost\n"
        "  Written by `shakeout init`: a start. Each drill must pass against\n"
        f"  {spec.name}.yaml and fail against {spec.name}-fragile.yaml, its negative control.\n"
        "\n"
        "  Background:\n"
        "    Given the target is up and every replica is ready\n"
        f'    And load of {spec.rate} requests per second from the "{spec.name}" profile\n'
        "    And a baseline of 3 seconds\n"
        "\n"
        f"  Scenario: A replica of {service} loses its node and requests go to the others\n"
        f'    When 1 replicas of "{service}" lose their node for 5 seconds\n'
        "    And the target has 3 seconds to recover\n"
        f"{checks}"
        "    And the target is back in its steady state after the fault\n"
        "    And every objective of the SLO file holds\n"
        "\n"
        f"  Scenario: Zone {zone} goes down and traffic fails over\n"
        f'    When zone "{zone}" goes down for 5 seconds\n'
        "    And the target has 3 seconds to recover\n"
        f"{checks}"
        f'    And the "{first}" journey recovers within 5 seconds of the fault\'s start\n'
        "    And every objective of the SLO file holds\n"
    )


def write(spec: Spec, directory: Path, force: bool = False) -> list[Path]:
    """Write the files; refuse to overwrite any unless ``force``. Returns them, in order."""
    files = {
        directory / f"{spec.name}.yaml": _target(spec, fragile=False),
        directory / f"{spec.name}-fragile.yaml": _target(spec, fragile=True),
        directory / f"{spec.name}.slo.yaml": _slo(spec),
        directory / "profiles" / f"{spec.name}.py": _profile(spec),
        directory / f"{spec.name}.feature": _feature(spec),
    }
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)}: already there (--force overwrites)")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)


def _run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    directory: Path = args.dir or Path(spec.name)
    files = write(spec, directory, args.force)
    for path in files:
        _console.print(f"wrote {path}")
    target, fragile, _slo_file, _profile_file, feature = files
    for target_file in (target, fragile):
        report = check_run(target_file, [feature])
        _console.print(f"checked {target_file}: {len(report.plans)} drills, ok")
    _console.print("next: what the drills will do, the drills (they pass), their negative")
    _console.print("control (it fails):", soft_wrap=True)
    for line in (
        f"shakeout plan --target {target} {feature}",
        f"pytest steps {feature} --target {target}",
        f"pytest steps {feature} --target {fragile}",
    ):
        _console.print(f"  {line}", soft_wrap=True, highlight=False)
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``init`` subcommand."""
    parser = commands.add_parser(
        "init",
        help="write a target, SLO file, load profile and starter drills for your own service",
        description="Write NAME/NAME.yaml (and NAME-fragile.yaml), NAME.slo.yaml, "
        "profiles/NAME.py and NAME.feature for a service, then check them. "
        "See docs/your-service.md.",
    )
    parser.add_argument("name", help="name of the target (lower-case, e.g. httpbin)")
    parser.add_argument(
        "--service",
        action="append",
        metavar="[NAME=]COMMAND",
        help="command starting one replica, with {port} for its port (repeatable for several "
        "services; the first gets the load; NAME defaults to the target's name)",
    )
    parser.add_argument(
        "--health", default="/healthz", help="readiness and liveness path (default: %(default)s)"
    )
    parser.add_argument(
        "--replicas", type=int, default=3, help="replicas per service (default: %(default)s)"
    )
    parser.add_argument("--zones", default="a,b,c", help="zones (default: %(default)s)")
    parser.add_argument(
        "--journey",
        action="append",
        metavar="NAME=METHOD /PATH",
        help="an endpoint the load calls, e.g. 'get=GET /get' (repeatable; default: home=GET /)",
    )
    parser.add_argument(
        "--rate", type=int, default=20, help="requests per second in the drills (default: 20)"
    )
    parser.add_argument("--dir", type=Path, help="where to write (default: ./NAME)")
    parser.add_argument("--force", action="store_true", help="overwrite files already there")
    parser.set_defaults(handler=_run)
