"""A real Prometheus and Alertmanager beside the embedded platform, started and stopped with it.

The platform daemon owns them: they run as its children (in their own sessions, killed with
it by ``PR_SET_PDEATHSIG`` if it is killed outright), listen on loopback ports picked at start,
and keep their data in the platform's state folder. Prometheus scrapes the daemon (job
``platform``) and every replica (job ``replicas``) found through file-based service discovery:
the daemon rewrites ``replicas.json`` whenever a replica starts, stops or moves, and Prometheus
picks the change up from the file (fsnotify) without a restart. Scrape and rule evaluation run
at the target's compressed interval (``platform.observability``, 0.5 s by default).

Without the binaries (``prometheus``; ``prometheus-alertmanager`` or ``alertmanager``) nothing
starts and :attr:`Monitoring.absent` says why: the alert steps skip with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shakeout._process import die_with_parent
from shakeout.errors import PlatformError, did_you_mean
from shakeout.observability.rules import alertmanager_config, rule_file, write_rules
from shakeout.platform.state import write_private
from shakeout.slofile import SLOFile
from shakeout.topology import LocalTarget, ObservabilitySpec

PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's name
READY_TIMEOUT_S = 30.0
MONITORING_NICE = 10
DEFAULT_RUNBOOK_URL = "docs/runbooks.md#{anchor}"
RECEIVER_PATH = "/v1/alerts/notify/{receiver}"  # the platform's recording webhook receiver
INSTALL_HINT = (
    "Prometheus and Alertmanager are not installed: the alert steps are skipped (Debian: "
    "apt-get install prometheus prometheus-alertmanager; `.ci/run` installs them as root)"
)


def find_binaries() -> tuple[str, str] | None:
    """Paths of the Prometheus and Alertmanager binaries, or None when either is missing."""
    prometheus = next((p for p in map(shutil.which, PROMETHEUS) if p), None)
    alertmanager = next((p for p in map(shutil.which, ALERTMANAGER) if p), None)
    if prometheus is None or alertmanager is None:
        return None
    return prometheus, alertmanager


def _free_port() -> int:
    # The port is released again before the binary binds it: a race with another process
    # taking it in between is possible, and reported as that binary not becoming ready.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class Monitoring:
    """Prometheus and Alertmanager of one running platform."""

    def __init__(
        self,
        spec: ObservabilitySpec,
        directory: Path,
        target_file: Path,
        slo: SLOFile | None,
        control_port: int,
        token: str,
        secret_dir: Path,
        environment: dict[str, str],
    ) -> None:
        """Nothing starts here; ``directory`` is the platform's ``monitoring`` folder,
        ``secret_dir`` the private store folder the receiver's token goes to (never reports/)."""
        self.spec = spec
        self.directory = directory
        self.target_file = target_file
        self.slo = slo
        self.control_port = control_port
        self.token = token
        self.secret_dir = secret_dir
        self.environment = environment
        self.prometheus_url: str | None = None
        self.alertmanager_url: str | None = None
        self._processes: list[asyncio.subprocess.Process] = []
        self.absent: str | None = None
        if spec.prometheus == "off":
            self.absent = "platform.observability.prometheus is off in the target file"
        elif find_binaries() is None:
            self.absent = INSTALL_HINT

    @property
    def pids(self) -> list[int]:
        """Process ids of the running binaries (for the state file)."""
        return [p.pid for p in self._processes if p.returncode is None]

    # -- configuration -----------------------------------------------------------------------

    def _rules(self) -> str:
        spec = self.spec
        if spec.rules != "slo":
            return self._copy(spec.rules, "rules.yml", "platform.observability.rules")
        runbook = DEFAULT_RUNBOOK_URL
        if self.slo is not None and self.slo.alerting is not None:
            runbook = self.slo.alerting.runbook_url
        document = rule_file(
            self.slo, scrape_interval_s=spec.scrape_interval_s, runbook_url=runbook
        )
        path = self.directory / "rules.yml"
        write_rules(path, document)
        return str(path)

    def _copy(self, name: str, as_name: str, field: str) -> str:
        source = self.target_file.parent / name
        if not source.is_file():
            raise PlatformError(f"{self.target_file}: field {field}: no file {source}")
        path = self.directory / as_name
        shutil.copyfile(source, path)
        return str(path)

    def _alertmanager(self) -> str:
        spec = self.spec
        if spec.alertmanager != "generated":
            return self._copy(
                spec.alertmanager, "alertmanager.yml", "platform.observability.alertmanager"
            )
        credentials = self.secret_dir / "receiver.token"  # removed with the secret store
        write_private(credentials, self.token)
        url = f"http://127.0.0.1:{self.control_port}" + RECEIVER_PATH.format(receiver=spec.receiver)
        document = alertmanager_config(
            {spec.receiver: url}, default=spec.receiver, credentials_file=str(credentials)
        )
        path = self.directory / "alertmanager.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return str(path)

    def _prometheus(self, rules: str, alertmanager_port: int) -> str:
        spec = self.spec
        interval = _duration(spec.scrape_interval_s)
        document: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": _duration(spec.evaluation_interval_s),
            },
            "rule_files": [rules],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "platform",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.control_port}"]}],
                },
                {
                    "job_name": "replicas",
                    "file_sd_configs": [
                        {"files": [str(self.directory / "replicas.json")], "refresh_interval": "5s"}
                    ],
                },
            ],
        }
        path = self.directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return str(path)

    def write_targets(self, replicas: list[dict[str, str]]) -> None:
        """File-based service discovery: every replica that serves metrics, with its labels
        (``address``, ``service``, ``zone``, ``replica``, ``version``, ``metrics_path``)."""
        if self.absent is not None:
            return
        groups = [
            {
                "targets": [r["address"]],
                "labels": {
                    "service": r["service"],
                    "zone": r["zone"],
                    "replica": r["replica"],
                    "version": r["version"],
                    "__metrics_path__": r["metrics_path"],
                },
            }
            for r in replicas
        ]
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "replicas.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(groups, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # Prometheus never reads half a file

    # -- processes ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Write the configs and start Alertmanager, then Prometheus; wait until both are
        ready. A binary that does not start is an error naming its log."""
        if self.absent is not None:
            return
        binaries = find_binaries()
        assert binaries is not None
        prometheus, alertmanager = binaries
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "replicas.json").exists():
            self.write_targets([])
        am_port, prom_port = _free_port(), _free_port()
        am_config = self._alertmanager()
        prom_config = self._prometheus(self._rules(), am_port)
        await self._spawn(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={am_config}",
                f"--storage.path={self.directory / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # one instance: no gossip port
                "--data.retention=2h",
            ],
        )
        await self._spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={self.directory / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--storage.tsdb.retention.time=1d",
            ],
        )
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        await self._ready("alertmanager", self.alertmanager_url)
        await self._ready("prometheus", self.prometheus_url)

    async def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        die = die_with_parent(signal.SIGKILL)

        def setup() -> None:  # pragma: no cover - runs in the child between fork and exec
            # Monitoring yields to the data path: on a busy 2-core machine a scrape or a rule
            # evaluation must not delay a request (any process may raise its own nice value).
            os.nice(MONITORING_NICE)
            if die is not None:
                die()

        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.directory,
                env=self.environment,
                start_new_session=True,
                preexec_fn=setup,
            )
        finally:
            log.close()
        self._processes.append(process)

    async def _ready(self, name: str, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession(trust_env=False) as session:
            while time.monotonic() < deadline:
                if any(p.returncode is not None for p in self._processes):
                    break
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        f"{url}/-/ready", timeout=aiohttp.ClientTimeout(total=1)
                    ) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)  # poll for readiness under the deadline above
        raise PlatformError(
            f"{name} did not become ready at {url} within {READY_TIMEOUT_S:g} s: "
            f"see {self.directory / (name + '.log')}"
        )

    async def stop(self) -> None:
        """Stop both (SIGTERM, then SIGKILL after 5 s)."""
        for process in self._processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self._processes.clear()


def alert_names(document: Any) -> set[str]:
    """The alert names of a Prometheus rule file's document."""
    groups = document.get("groups", []) if isinstance(document, dict) else []
    return {
        str(rule["alert"])
        for group in groups
        if isinstance(group, dict)
        for rule in group.get("rules", []) or []
        if isinstance(rule, dict) and "alert" in rule
    }


def check_alerting(spec: LocalTarget, target_file: Path, slo: SLOFile | None) -> list[str]:
    """Problems with a local target's alerting, found before anything starts: rule and
    Alertmanager files that are missing or unreadable, alerts ``rollback_on_alerts`` names
    that no rule has, PromQL canary analysis without a Prometheus to run it."""
    problems = []
    observe = spec.platform.observability
    where = f"{target_file}: field platform"
    names: set[str] = set()
    if observe.rules == "slo":
        names = alert_names(rule_file(slo, scrape_interval_s=observe.scrape_interval_s))
    else:
        path = target_file.parent / observe.rules
        try:
            names = alert_names(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{where}.observability.rules: cannot read {path}: {exc}")
    if observe.alertmanager != "generated":
        path = target_file.parent / observe.alertmanager
        if not path.is_file():
            problems.append(f"{where}.observability.alertmanager: no file {path}")
    for name in spec.platform.rollout.rollback_on_alerts:
        if names and name not in names:
            problems.append(
                f"{where}.rollout.rollback_on_alerts: no alert rule {name!r} on this target"
                + did_you_mean(name, names)
            )
    if spec.platform.rollout.analysis.metrics == "prometheus" and (
        observe.prometheus == "off" or find_binaries() is None
    ):
        problems.append(
            f"{where}.rollout.analysis.metrics: 'prometheus' needs the platform's Prometheus: "
            + (
                "platform.observability.prometheus is off"
                if observe.prometheus == "off"
                else INSTALL_HINT
            )
        )
    return problems
