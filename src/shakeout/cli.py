"""The ``shakeout`` command line.

shakeout platform up     [--target FILE]   start the embedded platform in the background
shakeout platform status [--target FILE]   gateway URL and every replica
shakeout platform down   [--target FILE]   stop every process the platform started
shakeout plan FEATURE... [--target FILE]   what each scenario will do, after the check below
shakeout validate PATH... [--target FILE]  check target files, SLO files and features
shakeout init NAME --command CMD ...       a target, SLO file, profile and feature for a service
shakeout cleanup [--target FILE]           play the rollbacks a killed run left behind
shakeout rules SLOFILE [--out FILE] ...    Prometheus alert rules from an SLO file
shakeout gameday FEATURE [-k EXPR] ...     run a drill live, step by step (docs/gameday.md)
shakeout history import FOLDER...          add run folders to the results history (SQLite)
shakeout report weekly [--nights 7]        the weekly digest of the last nights (docs/reports.md)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shakeout import profiles
from shakeout.chaos import undo
from shakeout.check import check_run
from shakeout.errors import ConfigError, PlatformError, ShakeoutError
from shakeout.gameday.cli import add_parser as add_gameday_parser
from shakeout.init import add_parser as add_init_parser
from shakeout.observability import rules
from shakeout.platform import lifecycle
from shakeout.report.commands import add_parsers as add_report_parsers
from shakeout.slofile import SLOFile, load_slo
from shakeout.target import load_target_file, open_session
from shakeout.topology import ObservabilitySpec, load_target

DEFAULT_TARGET = Path("targets/local.yaml")

_console = Console(soft_wrap=True)  # a long line stays one line in a log, for grep
_errors = Console(stderr=True, soft_wrap=True)


def _platform_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    _console.print(f"starting platform from {args.target} ...")
    state, new = lifecycle.up(args.target)
    if new:
        took = time.monotonic() - started
        _console.print(f"platform [bold]{state.target}[/] ready in {took:.1f} s")
    else:
        _console.print(f"platform [bold]{state.target}[/] was already running")
    _console.print(f"gateway: {state.gateway_url}")
    return 0


def status_tables(status: dict[str, Any]) -> tuple[Table, Table]:
    """The services and replicas tables of ``platform status``, from the control API's status."""
    services = Table(
        "service", "url", "traffic by version", "rollout", title="services", box=box.SIMPLE_HEAD
    )
    # Fits 80 columns (a CI log, a default terminal): no service column (each replica id
    # begins with it), and only version and state may wrap, never an id or a port.
    replicas = Table(title="replicas", box=box.SIMPLE_HEAD)
    for column in ("replica", "version", "zone", "state", "ready", "restarts", "port"):
        replicas.add_column(column, no_wrap=column not in ("version", "state"))
    for name, svc in status["services"].items():
        weights = ", ".join(f"{v} {w:.0%}" for v, w in svc["weights"].items())
        rollout = svc["rollout"]
        rollout_text = f"{rollout['version']}: {rollout['status']}" if rollout else "-"
        services.add_row(name, svc["url"], weights, rollout_text)
        for replica in svc["replicas"]:
            replicas.add_row(
                replica["id"],
                replica["version"],
                replica["zone"],
                replica["state"] + (" (frozen)" if replica.get("frozen") else ""),
                "yes" if replica["ready"] else "[red]no[/]",
                str(replica["restarts"]),
                str(replica["port"]),
            )
    return services, replicas


def _platform_status(args: argparse.Namespace) -> int:
    target = load_target(args.target)
    state = lifecycle.running(target.name)
    if state is None:
        _console.print(f"platform {target.name!r} is not running")
        return 3
    with lifecycle.PlatformClient(state) as client:
        status = client.status()
    _console.print(f"platform [bold]{state.target}[/] (pid {state.pid}) from {state.target_file}")
    _console.print(f"gateway: {state.gateway_url}    control: {state.control_url}")
    zones = ", ".join(
        f"{zone} {'ready' if health['ready'] else '[red]not ready[/]'}"
        + ("" if health["world"] == "up" else f" ({health['world']})")
        for zone, health in status["zone_health"].items()
    )
    _console.print(f"zones: {zones}    freezer: {status['freezer']}")
    services, replicas = status_tables(status)
    _console.print(services)
    _console.print(replicas)
    return 0


def _platform_down(args: argparse.Namespace) -> int:
    target = load_target(args.target)
    if lifecycle.down(target.name):
        _console.print(f"platform {target.name!r} stopped")
    else:
        _console.print(f"platform {target.name!r} was not running")
    return 0


def _plan(args: argparse.Namespace) -> int:
    report = check_run(
        args.target,
        args.features,
        args.profiles,
        allow_production=args.allow_production,
        max_replicas=args.max_replicas,
    )
    target = report.target
    for scenario in report.plans:
        tags = " ".join(f"@{t}" for t in scenario.tags)
        where = f"{scenario.feature}:{scenario.line}"
        _console.print(f"[bold]{escape(scenario.name)}[/]  {where}  {tags}")
        if not scenario.faults:
            _console.print("  no fault: load and expectations only")
        for fault in scenario.faults:
            _console.print(f"  line {fault.line}: {escape(fault.step)}")
            _console.print(
                f"    fault {fault.word} → {fault.experiment} {escape(str(fault.variables))}"
            )
            _console.print(f"    reaches {escape(fault.reach)}: {', '.join(fault.replicas)}")
    _console.print(
        f"target {target.name!r} ({target.kind}, {args.target}) checked; nothing was touched"
    )
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    target = load_target_file(args.target)
    records = undo.pending(target.name, include_live=args.force)
    if not records:
        _console.print(f"nothing to clean up for target {target.name!r}")
        return 0
    with ExitStack() as stack:
        try:  # never starts anything: the faults were left on the target as it is now
            stack.enter_context(open_session(args.target, target, start=False))
        except PlatformError as exc:
            _errors.print(
                f"{len(records)} fault(s) of target {target.name!r} were left behind, but "
                f"{exc}, so there is nothing to roll back on it now; or delete "
                f"{undo.undo_dir(target.name)}"
            )
            return 2
        for record in records:
            _console.print(f"rolling back {record.experiment} (left by run {record.id}) ...")
            _console.print(undo.finish(record, Path("reports") / "cleanup"))
    return 0


def _file_kind(path: Path) -> str:
    """``target``, ``slo`` or ``feature``: what a file given to ``validate`` is."""
    if path.is_dir() or path.suffix == ".feature":
        return "feature"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "target"  # the target check names the file and what is wrong with it
    if isinstance(data, dict) and "kind" not in data and set(data) <= set(SLOFile.model_fields):
        return "slo"
    return "target"


def _validate(args: argparse.Namespace) -> int:
    kinds = {path: _file_kind(path) for path in args.paths}
    features = [p for p, kind in kinds.items() if kind == "feature"]
    for path, kind in kinds.items():
        if kind == "slo":
            slo = load_slo(path)
            _console.print(f"{path}: ok (SLO file, {len(slo.thresholds())} objectives)")
        elif kind == "target":
            report = check_run(path, allow_production=args.allow_production)
            target = report.target
            slo_text = f", SLO file {target.slo}" if target.slo else ", no SLO file"
            _console.print(
                f"{path}: ok ({target.kind} target {target.name!r}, "
                f"{len(target.services)} services{slo_text})"
            )
    if features:
        report = check_run(
            args.target, features, args.profiles, allow_production=args.allow_production
        )
        _console.print(
            f"{len(report.features)} feature file(s), {len(report.plans)} scenario(s): ok "
            f"against {args.target}"
        )
    return 0


def _promtool_check(path: Path) -> tuple[bool, str] | None:
    """``promtool check rules`` on ``path``: whether it passed and what it said; None without
    promtool on PATH."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return None
    done = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _rules(args: argparse.Namespace) -> int:
    slo = load_slo(args.slofile)
    alerting = slo.alerting
    if args.production and alerting is None:
        raise ConfigError(
            f"{args.slofile}: --production needs an alerting section (its compression turns "
            "drill windows into production windows); see docs/observability.md"
        )
    runbook_url = args.runbook_url or (alerting.runbook_url if alerting else None)
    runbook_url = runbook_url or rules.DEFAULT_RUNBOOK_URL
    try:
        rules.runbook(runbook_url, "x")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            f"--runbook-url {runbook_url!r}: the only placeholder allowed is {{anchor}}"
        ) from None
    if args.scrape_interval is not None and args.scrape_interval < 0.001:
        raise ConfigError(f"--scrape-interval {args.scrape_interval:g}: give seconds above 0")
    drill_scrape_s = ObservabilitySpec().scrape_interval_s  # the embedded platform's default
    scrape_s = args.scrape_interval or (60.0 if args.production else drill_scrape_s)
    document = rules.rule_file(
        slo, scrape_interval_s=scrape_s, runbook_url=runbook_url, production=args.production
    )
    count = sum(1 for g in document["groups"] for r in g["rules"] if "alert" in r)
    what = f"{count} alerts ({'production' if args.production else 'drill'} windows)"
    if alerting is None or not alerting.journeys:
        _errors.print(
            f"{args.slofile}: no alerting.journeys: platform alerts only (docs/observability.md)"
        )
    with tempfile.TemporaryDirectory(prefix="shakeout-rules-") as scratch:
        out = args.out or Path(scratch) / "rules.yml"
        rules.write_rules(out, document)
        checked = _promtool_check(out)
        if args.out is None:
            sys.stdout.write(out.read_text(encoding="utf-8"))
            sys.stdout.flush()
    report = _console if args.out else _errors  # stdout stays the rule file alone
    if args.out:
        report.print(f"wrote {what} to {escape(str(args.out))}")
    if checked is None:
        report.print("promtool not on PATH: rules not checked (Debian package prometheus)")
        return 0
    passed, said = checked
    if not passed:
        _errors.print(f"[red]promtool check rules failed:[/]\n{escape(said)}")
        return 1
    report.print(f"promtool check rules: {escape(said.splitlines()[-1].strip())}")
    return 0


def _check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=Path,
        default=DEFAULT_TARGET,
        help="target file the features run against (default: %(default)s)",
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        default=profiles.PROFILE_DIR,
        help="folder of the load profiles the features name (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-production",
        action="store_true",
        help="a Kubernetes context matching the target's production patterns is allowed",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``shakeout`` command."""
    parser = argparse.ArgumentParser(
        prog="shakeout", description="Chaos and resilience drills against a target."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    platform = commands.add_parser("platform", help="manage the embedded platform")
    actions = platform.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("up", _platform_up, "start it in the background; returns when every replica is ready"),
        ("status", _platform_status, "print the gateway URL and every replica"),
        ("down", _platform_down, "stop every process the platform started"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument(
            "--target", type=Path, default=DEFAULT_TARGET, help="target file (default: %(default)s)"
        )
        sub.set_defaults(handler=handler)
    plan = commands.add_parser("plan", help="what each scenario will do, before anything runs")
    plan.add_argument("features", nargs="+", type=Path, help="feature files or folders")
    _check_options(plan)
    plan.add_argument(
        "--max-replicas", type=int, default=None, help="refuse a fault reaching more replicas"
    )
    plan.set_defaults(handler=_plan)
    cleanup = commands.add_parser(
        "cleanup", help="play the rollbacks of faults a killed run left behind"
    )
    cleanup.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    cleanup.add_argument(
        "--force", action="store_true", help="also records whose harness is still alive"
    )
    cleanup.set_defaults(handler=_cleanup)
    validate = commands.add_parser(
        "validate",
        help="check target files, SLO files and features (against --target) before a run",
    )
    validate.add_argument(
        "paths", nargs="+", type=Path, help="target files, SLO files, feature files or folders"
    )
    _check_options(validate)
    validate.set_defaults(handler=_validate)
    add_init_parser(commands)
    rules_parser = commands.add_parser(
        "rules",
        help="Prometheus alert rules from an SLO file (checked with promtool when present)",
    )
    rules_parser.add_argument("slofile", type=Path, help="SLO file with an alerting section")
    rules_parser.add_argument(
        "--out", type=Path, default=None, help="write the rule file here (default: stdout)"
    )
    rules_parser.add_argument(
        "--production",
        action="store_true",
        help="production windows: every drill window times alerting.compression",
    )
    rules_parser.add_argument(
        "--scrape-interval",
        type=float,
        default=None,
        metavar="S",
        help="the Prometheus scrape interval in seconds; no window is shorter than 4 of them "
        "(default: the embedded platform's, 1, or 60 with --production)",
    )
    rules_parser.add_argument(
        "--runbook-url",
        default=None,
        metavar="URL",
        help="runbook URL template, {anchor} the alert's name in lower case (default: the SLO "
        f"file's alerting.runbook_url, else {rules.DEFAULT_RUNBOOK_URL})",
    )
    rules_parser.set_defaults(handler=_rules)
    add_gameday_parser(commands)
    add_report_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shakeout`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ShakeoutError as exc:
        _errors.print("[red]error:[/]", escape(str(exc)), highlight=False)
        return 2
    except KeyboardInterrupt:
        _errors.print("interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
