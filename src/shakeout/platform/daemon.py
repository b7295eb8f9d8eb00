"""The platform daemon: supervisor, router and control API in one background process.

Started by ``shakeout platform up`` (see :mod:`shakeout.platform.lifecycle`), never imported by
the drills. It binds every service port and the control port first, so that a port in use is
reported before any replica starts; writes the state file once every replica is ready; and on
SIGTERM, SIGINT, or the death of its owner process stops every replica it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Generator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from shakeout.contracts import ServiceSettings
from shakeout.errors import ConfigError, ShakeoutError
from shakeout.observability.prometheus import Monitoring
from shakeout.platform.analysis import PromQLFigures
from shakeout.platform.control import create_control_app
from shakeout.platform.metrics import CONTENT_TYPE, PlatformMetrics
from shakeout.platform.router import Router
from shakeout.platform.secrets import store_dir
from shakeout.platform.state import PlatformState, pid_alive
from shakeout.platform.supervisor import Supervisor
from shakeout.slofile import SLOFile, load_slo
from shakeout.topology import LocalTarget, load_target

ROUTER_KEEPALIVE_S = 300  # seconds


class _Server(uvicorn.Server):
    """uvicorn server that leaves signal handling to the daemon."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(port: int, where: str) -> socket.socket:
    """Bind a loopback listening socket; a port in use names the field that asked for it."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP; without it every keep-alive response waits out delayed ACKs (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{where}: port {port} is not available ({exc.strerror})") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def bind_all(
    target: LocalTarget, target_file: str
) -> tuple[dict[str, socket.socket], socket.socket]:
    """Bind every service port and the control port, or fail naming the field."""
    bound: dict[str, socket.socket] = {}
    try:
        for name, spec in target.services.items():
            bound[name] = bind(spec.port, f"{target_file}: field services.{name}.port")
        control = bind(target.platform.control_port, f"{target_file}: field platform.control_port")
    except ConfigError:
        for sock in bound.values():
            sock.close()
        raise
    return bound, control


def _scrape_targets(supervisor: Supervisor) -> list[dict[str, str]]:
    """Every replica that serves metrics and has a process, for service discovery."""
    return [
        {
            "address": f"127.0.0.1:{r.port}",
            "service": name,
            "zone": r.zone,
            "replica": r.id,
            "version": r.version,
            "metrics_path": svc.spec.metrics_path,
        }
        for name, svc in supervisor.services.items()
        if svc.spec.metrics_path is not None
        for r in svc.replicas
        if r.port and r.state != "stopped"
    ]


def _analyse_through(monitoring: Monitoring, supervisor: Supervisor, target_file: str) -> None:
    """With ``rollout.analysis.metrics: prometheus`` the canary analysis queries the
    platform's Prometheus, which must then run."""
    if supervisor.spec.rollout.analysis.metrics != "prometheus":
        return
    if monitoring.prometheus_url is None:
        raise ConfigError(
            f"{target_file}: field platform.rollout.analysis.metrics: 'prometheus' needs the "
            f"platform's Prometheus, which does not run: {monitoring.absent}"
        )
    supervisor.analysis.prometheus = PromQLFigures(
        monitoring.prometheus_url, lambda: supervisor.http_client
    )


async def serve(target: LocalTarget, target_file: str, directory: Path, owner: int | None) -> None:
    """Run the platform until told to stop; always stop every replica on the way out."""
    sockets, control_sock = bind_all(target, target_file)
    ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
    control_port = control_sock.getsockname()[1]
    slo: SLOFile | None = load_slo(Path(target_file).parent / target.slo) if target.slo else None
    supervisor = Supervisor(target, directory, ports)
    metrics = PlatformMetrics(supervisor)
    metrics.start_at_zero()
    supervisor.on_event.append(metrics.on_event)
    router = Router(supervisor, {port: name for name, port in ports.items()}, metrics)
    token = secrets.token_urlsafe(32)
    control = create_control_app(supervisor, token)
    monitoring = Monitoring(
        target.platform.observability,
        directory / "monitoring",
        Path(target_file),
        slo,
        control_port,
        token,
        store_dir(directory),
        # The marker `platform cleanup` looks for before it kills a pid a dead daemon left.
        {**os.environ, ServiceSettings.ENV["data_dir"]: str(supervisor.data_dir)},
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("server", (None, 0))[1] != control_port:
            await router(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/metrics":
            # Read-only and on loopback: scraped without the control token.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE.encode())],
                }
            )
            await send({"type": "http.response.body", "body": metrics.exposition()})
        else:
            handler: ASGIApp = control
            await handler(scope, receive, send)

    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
        # Keep idle client connections as a proxy does (Envoy: an hour; nginx: 75 s), not
        # uvicorn's 5 s: a load generator reusing a connection the router was closing at that
        # moment saw "connection closed" on a request (a key-rotation drill lost 1 of 77).
        timeout_keep_alive=ROUTER_KEEPALIVE_S,
    )
    server = _Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.ensure_future(server.serve(sockets=[*sockets.values(), control_sock]))
    state = PlatformState(
        target=target.name,
        target_file=target_file,
        pid=os.getpid(),
        control_url=f"http://127.0.0.1:{control_port}",
        token=token,
        gateway_url=f"http://127.0.0.1:{ports[target.gateway]}",
        services={name: f"http://127.0.0.1:{port}" for name, port in ports.items()},
        started_at=time.time(),
        owner_pid=owner,
    )
    ready = False

    def record() -> None:
        if ready:
            cgroups = supervisor.world.cgroups
            dataclasses.replace(
                state,
                replica_pids=supervisor.pids() + monitoring.pids,
                cgroup=str(cgroups.base) if cgroups is not None else None,
                prometheus_url=monitoring.prometheus_url,
                alertmanager_url=monitoring.alertmanager_url,
                monitoring_absent=monitoring.absent,
            ).write(directory)

    supervisor.on_change.append(record)
    supervisor.on_change.append(lambda: monitoring.write_targets(_scrape_targets(supervisor)))
    try:
        await supervisor.start()  # opens the secret store, where the receiver's token goes
        await monitoring.start()
        _analyse_through(monitoring, supervisor, target_file)
        deadline = time.monotonic() + target.platform.ready_timeout_s
        while not supervisor.all_ready():
            if time.monotonic() > deadline:
                waiting = [
                    f"{r.id} ({r.as_dict()['state']}, readiness probe GET "
                    f"{target.services[name].health.ready} not answered 2xx/3xx; "
                    f"field services.{name}.health.ready; log {directory}/logs/{r.id}.log)"
                    for name, s in supervisor.services.items()
                    for r in s.replicas
                    if not r.ready
                ]
                raise ShakeoutError(
                    f"{target_file}: not every replica became ready within "
                    f"platform.ready_timeout_s={target.platform.ready_timeout_s:g} s: "
                    + ", ".join(waiting)
                )
            if stop.is_set():
                return
            await asyncio.sleep(0.05)  # poll for readiness under the deadline above
        ready = True
        record()
        # Everything allocated so far lives as long as the daemon: keep it out of the garbage
        # collector's scans, so a collection mid-drill (the router holding hundreds of
        # requests) pauses the data path for milliseconds, not for over a hundred.
        gc.collect()
        gc.freeze()
        print(f"shakeout platform {target.name!r} ready at {state.gateway_url}", flush=True)
        while not stop.is_set():
            if owner is not None and not pid_alive(owner):
                supervisor.event("owner_gone", owner_pid=owner)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        (directory / "state.json").unlink(missing_ok=True)
        try:
            await supervisor.stop()
        finally:
            await monitoring.stop()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 5)
        await router.aclose()
        supervisor.event("platform_stopped", target=target.name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m shakeout.platform.daemon``."""
    parser = argparse.ArgumentParser(prog="shakeout-platform-daemon")
    parser.add_argument("--target", required=True, help="target file (YAML)")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--owner-pid", type=int, default=None)
    parser.add_argument(
        "--detach", action="store_true", help="fork, print the daemon's pid and return at once"
    )
    args = parser.parse_args(argv)
    if args.detach:
        child = os.fork()
        if child:
            # The launcher exits at once, so the daemon is nobody's child: no zombie to reap and
            # no Popen object left running in the harness.
            print(child, flush=True)
            os._exit(0)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # release the launcher's pipe
    try:
        target = load_target(args.target)
        args.state_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(target, args.target, args.state_dir, args.owner_pid))
    except ShakeoutError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
