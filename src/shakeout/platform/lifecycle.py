"""Start, find, talk to and stop the embedded platform from the CLI, the drills and faults.

Stopping a platform removes its secret store (``shakeout.platform.secrets``) on every path:
the daemon removes it on its way out, and :func:`down` (or the next :func:`up`, or
:func:`running` finding a dead daemon) removes what a daemon killed outright left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from shakeout._process import tail, wait_for
from shakeout.contracts import ServiceSettings
from shakeout.errors import EvictionRefused, PlatformError, PlatformUnreachable
from shakeout.platform import network
from shakeout.platform.daemon import bind_all
from shakeout.platform.secrets import remove_store
from shakeout.platform.state import PlatformState, pid_alive, read_state, state_dir
from shakeout.topology import load_target


class PlatformClient:
    """Synchronous client of a running platform's control API."""

    def __init__(self, state: PlatformState, timeout_s: float = 10.0):
        self.state = state
        self._http = httpx.Client(
            base_url=state.control_url,
            headers={"Authorization": f"Bearer {state.token}"},
            timeout=timeout_s,
        )

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        json: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        try:
            if timeout_s is None:
                response = self._http.request(method, path, json=json)
            else:  # long operations (staged config, migrations) answer when they are done
                response = self._http.request(method, path, json=json, timeout=timeout_s)
        except httpx.TransportError as exc:
            raise PlatformUnreachable(
                f"platform {self.state.target!r}: control API at {self.state.control_url} "
                f"does not answer ({type(exc).__name__}); is it running? "
                f"(state file {self.state.path})"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", response.text)
            except ValueError:
                detail = response.text
            refused = response.status_code == 429  # a disruption budget: ask again later
            error = EvictionRefused if refused else PlatformError
            raise error(f"platform {self.state.target!r}: {method} {path}: {detail}")
        return response.json()

    def status(self) -> dict[str, Any]:
        """Services, versions, weights, rollouts and replicas."""
        result: dict[str, Any] = self._call("GET", "/v1/status")
        return result

    def replicas(self) -> list[dict[str, Any]]:
        """Every replica with zone, version, state, readiness and restarts."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/replicas")
        return result

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Platform events after sequence number ``since``."""
        result: list[dict[str, Any]] = self._call("GET", f"/v1/events?since={since}")
        return result

    def notifications(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Alert notifications the platform's recording receiver got since then (epoch s)."""
        result: list[dict[str, Any]] = self._call("GET", f"/v1/alerts/notifications?since={since}")
        return result

    def replica_action(self, replica: str, action: str) -> dict[str, Any]:
        """Kill, freeze or resume one replica."""
        result: dict[str, Any] = self._call("POST", f"/v1/replicas/{replica}/{action}")
        return result

    def zone_action(self, zone: str, action: str) -> dict[str, Any]:
        """Kill, freeze or resume a whole zone, or cordon or uncordon its node."""
        result: dict[str, Any] = self._call("POST", f"/v1/zones/{zone}/{action}")
        return result

    def zone_packet_loss(self, zone: str, percent: int) -> dict[str, Any]:
        """Have the kernel drop ``percent``% of a zone's replicas' packets (0: none)."""
        body = {"percent": percent}
        result: dict[str, Any] = self._call("POST", f"/v1/zones/{zone}/packet-loss", body)
        return result

    def evict_replica(self, replica: str) -> bool:
        """Ask for one replica's eviction (the Eviction API): True once granted, False while
        its disruption budget refuses it (ask again later, as ``kubectl drain`` does)."""
        try:
            self._call("POST", f"/v1/replicas/{replica}/evict")
        except EvictionRefused:
            return False
        return True

    def deploy(
        self,
        service: str,
        version: str,
        weight: float,
        env: dict[str, str] | None = None,
        replicas: int | None = None,
    ) -> dict[str, Any]:
        """Roll out a version of a service beside the stable one with a traffic weight."""
        body = {"version": version, "weight": weight, "env": env or {}, "replicas": replicas}
        result: dict[str, Any] = self._call("POST", f"/v1/services/{service}/deploy", body)
        return result

    def promote(self, service: str) -> dict[str, Any]:
        """Make the version being rolled out the stable one."""
        result: dict[str, Any] = self._call("POST", f"/v1/services/{service}/promote")
        return result

    def rollback(self, service: str) -> dict[str, Any]:
        """Roll back the version being rolled out (a no-op when there is none)."""
        result: dict[str, Any] = self._call("POST", f"/v1/services/{service}/rollback")
        return result

    def scale(self, service: str, replicas: int | None) -> dict[str, Any]:
        """Set the replica count of a service's stable version (None: the topology's)."""
        body = {"replicas": replicas}
        result: dict[str, Any] = self._call("POST", f"/v1/services/{service}/scale", body)
        return result

    def evict(self, service: str, replicas: int) -> dict[str, Any]:
        """Capacity loss: remove ``replicas`` of a service's stable version until restored."""
        body = {"replicas": replicas}
        result: dict[str, Any] = self._call("POST", f"/v1/services/{service}/evict", body)
        return result

    def restore(self, service: str) -> dict[str, Any]:
        """Bring back the replicas a capacity loss removed (a no-op when there are none)."""
        result: dict[str, Any] = self._call("POST", f"/v1/services/{service}/restore")
        return result

    def secret_store(self, reachable: bool) -> dict[str, Any]:
        """Take the secret store away (``False``) or bring it back (``True``)."""
        body = {"reachable": reachable}
        result: dict[str, Any] = self._call("POST", "/v1/secrets/store", body)
        return result

    def registry(self, reachable: bool) -> dict[str, Any]:
        """Take the image registry away (a registry outage) or bring it back."""
        result: dict[str, Any] = self._call("POST", "/v1/registry", {"reachable": reachable})
        return result

    def secrets_status(self) -> dict[str, Any]:
        """The secret store's key id and every replica's key id and source (store/cache)."""
        result: dict[str, Any] = self._call("GET", "/v1/secrets/status")
        return result

    def old_key_check(self, service: str) -> dict[str, Any]:
        """Call a replica of ``service`` with the previous key; ``refused`` when it got 401."""
        body = {"service": service}
        result: dict[str, Any] = self._call("POST", "/v1/secrets/old-key-check", body)
        return result

    def config(self) -> dict[str, Any]:
        """The live config (feature flags), any canary stage and the last change's outcome."""
        result: dict[str, Any] = self._call("GET", "/v1/config")
        return result

    def set_flags(self, flags: dict[str, str], timeout_s: float = 60.0) -> dict[str, Any]:
        """Change feature flags; returns when the (staged) rollout is applied or rolled back."""
        result: dict[str, Any] = self._call("POST", "/v1/config", {"flags": flags}, timeout_s)
        return result

    def revert_config(self) -> dict[str, Any]:
        """Restore the config in force before the last change (a no-op when unchanged)."""
        result: dict[str, Any] = self._call("POST", "/v1/config/revert")
        return result

    def migration_status(self) -> dict[str, Any]:
        """The orders store's schema state (schema, target, phase, tables)."""
        result: dict[str, Any] = self._call("GET", "/v1/migrations/orders")
        return result

    def migrate_orders(self, to: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Migrate the orders store to schema ``to``; returns when the migration is done."""
        result: dict[str, Any] = self._call("POST", "/v1/migrations/orders", {"to": to}, timeout_s)
        return result

    def rotate_key(self) -> dict[str, Any]:
        """Rotate the shared internal key."""
        result: dict[str, Any] = self._call("POST", "/v1/secrets/rotate")
        return result


def running(target_name: str) -> PlatformState | None:
    """State of the target's platform if its daemon is alive, else None (stale files removed)."""
    state = read_state(target_name)
    if state is None:
        return None
    if not pid_alive(state.pid):
        _reap(state)  # a daemon killed outright: what it left goes now
        state.path.unlink(missing_ok=True)
        remove_store(state_dir(target_name))
        return None
    return state


def up(target_file: Path | str, owner_pid: int | None = None) -> tuple[PlatformState, bool]:
    """Start the platform in the background and return once every replica is ready.

    Returns the state and whether this call started it (False when it was already running).
    With ``owner_pid`` the daemon stops by itself when that process ends.
    """
    target = load_target(target_file)
    existing = running(target.name)
    if existing is not None:
        if Path(existing.target_file).resolve() != Path(target_file).resolve():
            raise PlatformError(
                f"platform {target.name!r} is already running from {existing.target_file}; "
                f"stop it first with 'shakeout platform down --target {existing.target_file}'"
            )
        return existing, False
    sockets, control = bind_all(target, str(target_file))  # fail on a busy port now
    for sock in [*sockets.values(), control]:
        sock.close()
    directory = state_dir(target.name)
    directory.mkdir(parents=True, exist_ok=True)
    remove_store(directory)  # keys a daemon killed before it was ready left behind
    log_path = directory / "daemon.log"
    command = [
        sys.executable,
        "-m",
        "shakeout.platform.daemon",
        "--detach",
        "--target",
        str(target_file),
        "--state-dir",
        str(directory),
    ]
    if owner_pid is not None:
        command += ["--owner-pid", str(owner_pid)]
    with log_path.open("wb") as log:
        launched = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            check=False,
            timeout=30,
        )
    if launched.returncode != 0 or not launched.stdout.strip().isdigit():
        raise PlatformError(
            f"platform {target.name!r} failed to start (exit code {launched.returncode}):\n"
            + tail(log_path)
        )
    pid = int(launched.stdout)

    def settled() -> bool:
        state = read_state(target.name)
        return (state is not None and state.pid == pid) or not pid_alive(pid)

    wait_for(settled, target.platform.ready_timeout_s + 10)
    state = read_state(target.name)
    if state is not None and state.pid == pid:
        return state, True
    if not pid_alive(pid):
        raise PlatformError(f"platform {target.name!r} failed to start:\n" + tail(log_path))
    os.kill(pid, signal.SIGTERM)
    raise PlatformError(
        f"platform {target.name!r} not ready after {target.platform.ready_timeout_s:g} s; "
        f"daemon log:\n{tail(log_path)}"
    )


def down(target_name: str, timeout_s: float = 10.0) -> bool:
    """Stop a target's platform, every replica it started and its secret store; False when
    none was running (a secret store a daemon killed before it was ready left goes anyway)."""
    state = read_state(target_name)
    if state is None:
        remove_store(state_dir(target_name))
        return False
    if pid_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        if not wait_for(lambda: not pid_alive(state.pid), timeout_s):
            os.kill(state.pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(state.pid), 5.0)  # gone before its store goes
    # Replicas die with the daemon (PR_SET_PDEATHSIG); make sure of it anyway, with every
    # process of each replica's group: a multi-process server's workers have no such signal,
    # and a frozen worker outlives its leader unless it is killed.
    _reap(state)
    state.path.unlink(missing_ok=True)
    remove_store(state_dir(target_name))  # the daemon removes it on its way out, unless killed
    return True


def _reap(state: PlatformState) -> None:
    """End every process a stopped (or killed) daemon's replicas left, and their cgroups."""
    for pgid in state.replica_pids:
        for pid in _group_members(pgid):
            if _is_replica(pid, state):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
    if state.cgroup:
        _remove_cgroups(Path(state.cgroup))
    network.remove_stale_tables()  # the packet loss of a daemon killed outright


def _remove_cgroups(base: Path) -> None:
    """Remove the replicas' cgroups a daemon killed outright left behind (empty once their
    processes are gone; ``cgroup.kill`` ends any that are not)."""
    if not base.name.startswith("shakeout-") or not base.is_dir():
        return
    groups = [p for p in base.iterdir() if p.is_dir()]
    for group in groups:
        with contextlib.suppress(OSError):
            (group / "cgroup.kill").write_bytes(b"1")

    def removed() -> bool:
        for path in [*groups, base]:
            with contextlib.suppress(FileNotFoundError):
                try:
                    path.rmdir()
                except OSError:
                    return False
        return True

    wait_for(removed, 5.0)  # the kill is asynchronous: a group empties a moment later


def _group_members(pgid: int) -> list[int]:
    """Every live process whose process group is ``pgid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _is_replica(pid: int, state: PlatformState) -> bool:
    """Guard against pid reuse: only kill a process whose environment names this platform."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    variable = ServiceSettings.ENV["data_dir"]  # set by the platform on every replica
    return f"{variable}={state_dir(state.target) / 'data'}".encode() in environ.split(b"\0")
