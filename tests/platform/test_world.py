"""Faults act on the world; the control plane has to find out (see shakeout.platform.world).

Two properties, each on a small target of a plain ASGI app (not the shop), so that only the
platform's own detection is under test:

* a freeze stops every process of a replica: uvicorn with two workers answers nothing while
  frozen (the old fault stopped the parent only, and the workers kept answering);
* parity: a freeze through the control API and the same ``SIGSTOP`` sent from outside, with
  nothing announced, give the same platform behaviour (the probes mark the replica not ready;
  requests sent to it before that wait for the per-try timeout and are retried elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from _support import platform_up

from shakeout._process import wait_for
from shakeout.platform import lifecycle
from shakeout.platform.cgroups import Cgroups
from shakeout.platform.deployments import spread_victims
from shakeout.platform.nodes import NodeController
from shakeout.platform.replicas import Replica
from shakeout.platform.state import PlatformState, pid_alive
from shakeout.platform.supervisor import Supervisor
from shakeout.platform.world import World
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""

PER_TRY_S = 0.3


def _target(
    tmp_path: Path, name: str, replicas: int, workers: int, zones: list[str], health: str = ""
) -> Path:
    (tmp_path / "pidapp.py").write_text(APP, encoding="utf-8")
    command = [
        "{python}", "-m", "uvicorn", "pidapp:app", "--app-dir", str(tmp_path),
        "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    target = tmp_path / f"{name}.yaml"
    target.write_text(
        f"name: {name}\n"
        "kind: local\n"
        "platform:\n"
        f"  zones: {zones}\n"
        "  gateway: web\n"
        "  router:\n"
        "    retries: 1\n"
        "    eject_after_failures: 0\n"  # detection by the probes alone: the same both times
        f"    per_try_timeout_s: {PER_TRY_S}\n"
        "    balancer: round_robin\n"
        "services:\n"
        "  web:\n"
        f"    command: {command!r}\n"
        f"    replicas: {replicas}\n"
        f"    health: {{ready: /, live: /{health}}}\n",
        encoding="utf-8",
    )
    return target


def _group(pgid: int) -> dict[int, str]:
    """Every process of a process group, with its state letter from /proc (T: stopped)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            found[int(entry.name)] = fields[0]
    return found


def _frozen(pgid: int) -> bool:
    """Whether every process of the group is stopped: by SIGSTOP (state T), or by the cgroup
    v2 freezer (its cgroup's ``cgroup.events`` says ``frozen 1``)."""
    states = _group(pgid)
    if states and set(states.values()) == {"T"}:
        return True
    try:
        path = Path(f"/proc/{pgid}/cgroup").read_text().split("0::", 1)[1].split("\n")[0]
        mount = next(
            line.split(" - ")[0].split(" ")[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split(" - ")[1].startswith("cgroup2 ")
        )
        events = Path(mount + path, "cgroup.events").read_text()
    except (OSError, IndexError, StopIteration):
        return False
    return "frozen 1" in events


def _replica(state: PlatformState, replica_id: str) -> dict[str, object]:
    with lifecycle.PlatformClient(state) as client:
        return next(r for r in client.replicas() if r["id"] == replica_id)


def test_a_freeze_stops_every_worker_of_a_multi_process_server(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    target = _target(tmp_path, "workers", replicas=1, workers=2, zones=["a"])
    with platform_up(target, runtime_dir) as state:
        web = _replica(state, "web-0")
        pgid = int(str(web["pid"]))
        url = f"http://127.0.0.1:{web['port']}/"
        # uvicorn's parent and its two workers, all in the replica's process group
        assert wait_for(lambda: len(_group(pgid)) >= 3, 10), _group(pgid)
        answered_by = {httpx.get(url, timeout=5).text for _ in range(20)}
        assert str(pgid) not in answered_by  # the workers answer, not the parent
        with lifecycle.PlatformClient(state) as client:
            client.replica_action("web-0", "freeze")
            try:
                assert wait_for(lambda: _frozen(pgid), 5), _group(pgid)
                for _ in range(4):
                    with pytest.raises(httpx.TimeoutException):
                        httpx.get(url, timeout=0.5)
            finally:
                client.replica_action("web-0", "resume")
        assert not _frozen(pgid)
        assert httpx.get(url, timeout=5).status_code == 200


def test_a_frozen_worker_is_not_left_behind_when_the_daemon_is_killed_outright(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    target = _target(tmp_path, "orphans", replicas=1, workers=2, zones=["a"])
    with platform_up(target, runtime_dir) as state:
        pgid = int(str(_replica(state, "web-0")["pid"]))
        assert wait_for(lambda: len(_group(pgid)) >= 3, 10), _group(pgid)
        with lifecycle.PlatformClient(state) as client:
            client.replica_action("web-0", "freeze")
        assert wait_for(lambda: _frozen(pgid), 5), _group(pgid)
        os.kill(state.pid, signal.SIGKILL)  # no orderly stop: nothing continues the workers
        assert wait_for(lambda: not pid_alive(state.pid), 10)
        # The leader dies with the daemon (its parent-death signal); its workers have none.
    # Leaving the block ran `lifecycle.down`, as a harness's cleanup does.
    assert wait_for(lambda: set(_group(pgid).values()) <= {"Z"}, 10), _group(pgid)


@dataclass
class _Load:
    """GETs through the router at a fixed pace from a thread; bounded by ``stop`` and a count."""

    url: str
    rate: float = 30.0
    limit: int = 600
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            due = time.monotonic()
            while not self._stop.is_set() and len(self.latencies) + self.errors < self.limit:
                due += 1.0 / self.rate
                started = time.monotonic()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.errors += 1
                self._stop.wait(max(0.0, due - time.monotonic()))

    @classmethod
    @contextlib.contextmanager
    def during(cls, url: str) -> Iterator[_Load]:
        """Load running in a thread for the ``with`` block."""
        load = cls(url)
        thread = threading.Thread(target=load.run, daemon=True)
        thread.start()
        try:
            yield load
        finally:
            load._stop.set()
            thread.join(10)


def _freeze_once(state: PlatformState, how: str) -> tuple[_Load, list[str]]:
    """Freeze web-1 (``api``: through the control API; ``signal``: SIGSTOP to its process
    group from here, nothing announced) under load until the platform marks it not ready,
    then resume it and wait until it is ready again; the load and web-1's events."""
    with lifecycle.PlatformClient(state) as client:
        since = max((e["seq"] for e in client.events()), default=0)
        pgid = int(str(_replica(state, "web-1")["pid"]))
        with _Load.during(state.gateway_url + "/") as load:
            assert wait_for(lambda: len(load.latencies) >= 15, 10)  # load is flowing
            if how == "api":
                client.replica_action("web-1", "freeze")
            else:
                os.killpg(pgid, signal.SIGSTOP)
            try:
                assert wait_for(lambda: _replica(state, "web-1")["ready"] is False, 10)
                sent = len(load.latencies) + load.errors
                assert wait_for(lambda: len(load.latencies) + load.errors >= sent + 15, 10)
            finally:
                if how == "api":
                    client.replica_action("web-1", "resume")
                else:
                    os.killpg(pgid, signal.SIGCONT)
            assert wait_for(lambda: _replica(state, "web-1")["ready"] is True, 10)
        kinds = [e["kind"] for e in client.events(since) if e.get("replica") == "web-1"]
    return load, kinds


def test_a_freeze_through_the_control_api_is_detected_like_an_unannounced_sigstop(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    target = _target(tmp_path, "parity", replicas=3, workers=1, zones=["a", "b", "c"])
    with platform_up(target, runtime_dir) as state:
        outcomes = {how: _freeze_once(state, how) for how in ("api", "signal")}
    for how, (load, kinds) in outcomes.items():
        control_plane = [k for k in kinds if k in ("replica_not_ready", "replica_ready")]
        assert control_plane == ["replica_not_ready", "replica_ready"], (how, kinds)
        # Until the probes found out, the router kept sending web-1 its share: each such
        # request waited for the per-try timeout and was retried on another replica.
        waited = [t for t in load.latencies if t >= PER_TRY_S]
        assert waited, f"{how}: no request waited for the frozen replica: it was announced"
        assert load.errors == 0, how
    api_waited, signal_waited = (
        sum(1 for t in outcomes[how][0].latencies if t >= PER_TRY_S) for how in ("api", "signal")
    )
    # Within noise: the same detection, so about as many requests caught by the freeze (the
    # probes' phase against the freeze moves the detection by up to a probe period or two).
    assert abs(api_waited - signal_waited) <= max(3, 2 / 3 * max(api_waited, signal_waited))


def test_a_zone_is_not_ready_only_after_its_heartbeats_stop_for_the_grace() -> None:
    now = [0.0]
    beating = {"a": True, "b": True}
    changes: list[tuple[str, bool]] = []
    nodes = NodeController(
        ["a", "b"], beating.__getitem__, lambda z, r: changes.append((z, r)), 0.2, 1.0,
        clock=lambda: now[0],
    )  # fmt: skip
    nodes.tick()
    beating["b"] = False  # the zone froze: nobody tells the controller
    for t in (0.2, 0.4, 0.6, 0.8):
        now[0] = t
        nodes.tick()
    assert nodes.ready("b")
    assert changes == []
    now[0] = 1.0
    nodes.tick()
    assert not nodes.ready("b")
    assert changes == [("b", False)]
    assert nodes.ready_zones() == ["a"]
    beating["b"] = True
    now[0] = 1.2
    nodes.tick()
    assert nodes.ready("b")
    assert changes == [("b", False), ("b", True)]


def test_placement_spreads_over_ready_zones_and_scale_down_keeps_the_spread(
    tmp_path: Path,
) -> None:
    target = load_target(ROOT / "targets" / "local.yaml")

    async def place() -> tuple[list[str], list[str], list[str]]:
        sup = Supervisor(target, tmp_path, dict.fromkeys(target.services, 0))
        gateway = sup.services["gateway"]

        def add(zone: str, ready: bool = True) -> None:
            replica = Replica(
                id=f"gateway-{len(gateway.replicas)}", service="gateway", version="v1",
                zone=zone, port=0, env={},
            )  # fmt: skip
            replica.ready = ready
            gateway.replicas.append(replica)

        first = []
        for _ in range(4):
            first.append(sup.deployments.zone_for(gateway, "v1"))
            add(first[-1])
        sup.nodes._ready["b"] = False  # as the node controller decides from heartbeats
        while_b_failed = []
        for _ in range(2):
            while_b_failed.append(sup.deployments.zone_for(gateway, "v1"))
            add(while_b_failed[-1])
        sup.nodes._ready["b"] = True
        left = [r for r in gateway.replicas if r not in spread_victims(gateway.replicas, 3)]
        return first, while_b_failed, sorted(r.zone for r in left)

    first, while_b_failed, left = asyncio.run(place())
    assert first == ["a", "b", "c", "a"]
    assert while_b_failed == ["c", "a"]  # the fewest first, never the zone not ready
    assert left == ["a", "b", "c"]  # six (three in a, two in c) scaled to three: one per zone


def test_a_replica_failing_its_liveness_probe_is_killed_and_restarted(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    target = _target(
        tmp_path, "liveness", replicas=1, workers=1, zones=["a"],
        health=", liveness_failure_threshold: 2",
    )  # fmt: skip
    with platform_up(target, runtime_dir) as state, lifecycle.PlatformClient(state) as client:
        before = _replica(state, "web-0")
        client.replica_action("web-0", "freeze")  # stays frozen: nobody resumes it
        assert wait_for(lambda: _replica(state, "web-0")["restarts"] == 1, 15)
        assert wait_for(lambda: _replica(state, "web-0")["ready"] is True, 15)
        assert _replica(state, "web-0")["pid"] != before["pid"]
        kinds = [e["kind"] for e in client.events() if e.get("replica") == "web-0"]
        assert kinds.index("replica_liveness_failed") < kinds.index("replica_restarted")


def test_liveness_waits_until_the_replica_was_ready_once() -> None:
    """A replica still starting (slow on a busy machine) is not killed by its liveness probe,
    as a kubelet holds liveness back behind a startup probe; once it ran, it is."""
    from types import SimpleNamespace

    import aiohttp

    from shakeout.platform.probes import Probes
    from shakeout.platform.replicas import Service
    from shakeout.topology import ServiceSpec

    spec = ServiceSpec.model_validate(
        {"command": ["x", "{port}"], "health": {"liveness_failure_threshold": 1, "timeout_s": 0.2}}
    )
    dead_port = Replica(id="web-0", service="web", version="v1", zone="a", port=9, env={})
    dead_port.process = SimpleNamespace(pid=4242)  # type: ignore[assignment]
    killed: list[int] = []
    probes = Probes(
        {"web": Service("web", spec, 0, "v1", [dead_port])},
        lambda zone: True, killed.append, lambda *a, **k: None, lambda: None,
    )  # fmt: skip

    async def probe_twice() -> None:
        async with aiohttp.ClientSession() as client:
            await probes.probe(client, dead_port)  # starting: nothing answers yet
            assert killed == []
            dead_port.state = "running"  # it was ready once since its start
            await probes.probe(client, dead_port)

    asyncio.run(probe_twice())
    assert killed == [4242]


def test_a_readiness_change_reaches_the_router_after_the_propagation_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = load_target(ROOT / "targets" / "local.yaml")
    target = local.model_copy(
        update={"platform": local.platform.model_copy(update={"endpoints_delay_s": 0.5})}
    )
    now = [100.0]
    monkeypatch.setattr("shakeout.platform.supervisor.time.monotonic", lambda: now[0])

    async def endpoints() -> list[list[str]]:
        sup = Supervisor(target, tmp_path, dict.fromkeys(target.services, 0))
        catalog = sup.services["catalog"]
        for i in range(2):
            replica = Replica(
                id=f"catalog-{i}", service="catalog", version="v1", zone="a", port=0, env={},
            )  # fmt: skip
            replica.state = "running"
            replica.mark(True)
            catalog.replicas.append(replica)
        seen = []
        now[0] += 1.0
        seen.append([r.id for r in sup.routable("catalog")])  # both ready long enough
        catalog.replicas[1].mark(False)  # its probes failed just now
        seen.append([r.id for r in sup.routable("catalog")])  # not propagated yet
        now[0] += 0.5
        seen.append([r.id for r in sup.routable("catalog")])
        return seen

    assert asyncio.run(endpoints()) == [
        ["catalog-0", "catalog-1"],
        ["catalog-0", "catalog-1"],
        ["catalog-0"],
    ]


def test_without_a_cgroup_hierarchy_that_takes_processes_the_world_uses_process_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory that looks like a cgroup v2 hierarchy (it has cgroup.freeze) but into which
    # no process can move: the freezer is not used, rather than a replica failing to start.
    monkeypatch.setattr("shakeout.platform.cgroups._cgroup2_mount", lambda: tmp_path)
    monkeypatch.setattr("shakeout.platform.cgroups._own_path", lambda: "")
    assert Cgroups.create("shakeout-nothing") is None  # not even a cgroup.freeze
    (tmp_path / "shakeout-fake").mkdir()
    (tmp_path / "shakeout-fake" / "cgroup.freeze").write_text("0")
    assert Cgroups.create("shakeout-fake") is None  # cgroup.procs refuses the probe
    assert World().freezer == "SIGSTOP to the process group"
