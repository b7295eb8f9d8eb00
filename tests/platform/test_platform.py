"""The embedded platform for real: processes on loopback, router, control API, faults."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from shakeout._process import wait_for
from shakeout.errors import ConfigError, PlatformError
from shakeout.observability.prometheus import find_binaries
from shakeout.platform import lifecycle
from shakeout.platform.replicas import Replica
from shakeout.platform.state import PlatformState, pid_alive
from shakeout.platform.supervisor import Supervisor
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "targets" / "local.yaml"


def _gateway(platform: PlatformState) -> httpx.Client:
    return httpx.Client(base_url=platform.gateway_url, timeout=10.0)


def _replica(client: lifecycle.PlatformClient, replica_id: str) -> dict[str, object]:
    return next(r for r in client.replicas() if r["id"] == replica_id)


def test_every_replica_is_ready_and_spread_over_zones(client: lifecycle.PlatformClient) -> None:
    replicas = client.replicas()
    assert all(r["ready"] and r["state"] == "running" for r in replicas)
    gateways = [r for r in replicas if r["service"] == "gateway"]
    assert sorted(r["zone"] for r in gateways) == ["a", "b", "c"]


def test_responses_name_the_replica_and_traffic_is_balanced(platform: PlatformState) -> None:
    seen: Counter[str] = Counter()
    with _gateway(platform) as gw:
        for _ in range(30):
            seen[gw.get("/api/products").headers["x-shakeout-replica"]] += 1
            time.sleep(0.05)  # about 20 rps: under the gateway replicas' capacity (15 rps each)
    assert set(seen) == {"gateway-0", "gateway-1", "gateway-2"}
    assert min(seen.values()) >= 5


def test_control_api_needs_the_token(platform: PlatformState) -> None:
    response = httpx.get(platform.control_url + "/v1/replicas")
    assert response.status_code == 401
    assert "token" in response.json()["error"]


def test_unknown_replica_is_named(client: lifecycle.PlatformClient) -> None:
    with pytest.raises(PlatformError, match="no replica 'nope'"):
        client.replica_action("nope", "kill")


def test_killed_replica_is_restarted_and_counted(client: lifecycle.PlatformClient) -> None:
    client.replica_action("catalog-0", "kill")
    assert wait_for(lambda: _replica(client, "catalog-0")["restarts"] == 1, 10)
    assert wait_for(lambda: _replica(client, "catalog-0")["ready"] is True, 10)
    kinds = [e["kind"] for e in client.events() if e.get("replica") == "catalog-0"]
    assert "replica_killed" in kinds
    assert "replica_restarted" in kinds


def test_frozen_replica_leaves_traffic_until_resumed(
    client: lifecycle.PlatformClient, platform: PlatformState
) -> None:
    client.replica_action("gateway-1", "freeze")
    try:
        assert wait_for(lambda: _replica(client, "gateway-1")["ready"] is False, 5)
        with _gateway(platform) as gw:
            served = {gw.get("/api/products").headers["x-shakeout-replica"] for _ in range(20)}
        assert "gateway-1" not in served
    finally:
        client.replica_action("gateway-1", "resume")
    assert wait_for(lambda: _replica(client, "gateway-1")["ready"] is True, 5)


def test_weighted_rollout_then_promotion(
    client: lifecycle.PlatformClient, platform: PlatformState
) -> None:
    client.deploy("catalog", "v2", 0.5)
    assert wait_for(
        lambda: client.status()["services"]["catalog"]["rollout"]["status"] == "available", 15
    )
    with httpx.Client(base_url=platform.services["catalog"], timeout=5.0) as catalog:
        versions = Counter(catalog.get("/healthz").headers["x-shakeout-version"] for _ in range(60))
        assert set(versions) == {"v1", "v2"}
        assert 10 <= versions["v2"] <= 50
        client.promote("catalog")
        versions = Counter(catalog.get("/healthz").headers["x-shakeout-version"] for _ in range(20))
        assert versions == Counter({"v2": 20})
    assert {r["version"] for r in client.replicas() if r["service"] == "catalog"} == {"v2"}


def test_crash_looping_release_backs_off_and_is_rolled_back(
    client: lifecycle.PlatformClient, platform: PlatformState
) -> None:
    client.deploy("payments", "bad", 0.5, env={"SHAKEOUT_CRASH_ON_START": "1"})
    states: set[str] = set()

    def rolled_back() -> bool:
        for r in client.replicas():
            if r["version"] == "bad":
                states.add(str(r["state"]))
        return client.status()["services"]["payments"]["rollout"]["status"] == "rolled_back"

    assert wait_for(rolled_back, 20, period_s=0.1)
    assert "CrashLoopBackOff" in states
    rollout = client.status()["services"]["payments"]["rollout"]
    assert "restarted" in rollout["reason"] or "deadline" in rollout["reason"]
    assert all(r["version"] != "bad" for r in client.replicas())
    with _gateway(platform) as gw:
        response = gw.post(
            "/api/checkout",
            json={"items": [{"product_id": "p1", "quantity": 1}]},
            headers={"Idempotency-Key": "after-rollback"},
        )
    assert response.status_code == 201


def test_zone_outage_fails_over_and_recovers(
    client: lifecycle.PlatformClient, platform: PlatformState
) -> None:
    down = client.zone_action("b", "kill")["replicas"]
    assert "gateway-1" in down
    try:
        with _gateway(platform) as gw:
            zones = {gw.get("/api/products").headers["x-shakeout-zone"] for _ in range(20)}
        assert "b" not in zones
        assert all(not r["ready"] for r in client.replicas() if r["zone"] == "b")
    finally:
        client.zone_action("b", "resume")
    assert wait_for(lambda: all(r["ready"] for r in client.replicas()), 15)


def test_a_zone_that_stopped_answering_gets_no_new_replica_and_the_spread_comes_back(
    client: lifecycle.PlatformClient,
) -> None:
    since = max((e["seq"] for e in client.events()), default=0)
    client.zone_action("b", "freeze")
    try:
        # Nobody tells the control plane: its node controller sees the heartbeats stop.
        assert wait_for(
            lambda: any(
                e["kind"] == "zone_not_ready" and e["zone"] == "b" for e in client.events(since)
            ),
            10,
        )
        assert client.status()["zone_health"]["b"] == {
            "ready": False,
            "cordoned": False,
            "world": "frozen",
        }
        client.scale("catalog", 5)  # one in a and b: the three new ones go to c, a, c
        catalog = [r for r in client.replicas() if r["service"] == "catalog"]
        assert sorted(r["zone"] for r in catalog) == ["a", "a", "b", "c", "c"]
    finally:
        client.zone_action("b", "resume")
    assert wait_for(lambda: client.status()["zone_health"]["b"]["ready"] is True, 10)
    client.scale("catalog", None)  # back to two: the spread over a and b is restored
    catalog = [r for r in client.replicas() if r["service"] == "catalog"]
    assert sorted(r["zone"] for r in catalog) == ["a", "b"]
    assert wait_for(lambda: all(r["ready"] for r in client.replicas()), 15)


def test_scale_and_key_rotation(client: lifecycle.PlatformClient, platform: PlatformState) -> None:
    client.scale("inventory", 3)
    assert wait_for(
        lambda: (
            sum(1 for r in client.replicas() if r["service"] == "inventory" and r["ready"]) == 3
        ),
        15,
    )
    client.scale("inventory", 2)
    assert sum(1 for r in client.replicas() if r["service"] == "inventory") == 2
    client.rotate_key()
    with _gateway(platform) as gw:
        response = gw.post(
            "/api/checkout",
            json={"items": [{"product_id": "p2", "quantity": 1}]},
            headers={"Idempotency-Key": "after-rotation"},
        )
    assert response.status_code == 201


def test_status_command_prints_gateway_and_replicas(platform: PlatformState) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shakeout.cli", "platform", "status", "--target", str(LOCAL)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert platform.gateway_url in result.stdout
    assert "orders-2" in result.stdout


def test_port_in_use_fails_before_anything_starts(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = LOCAL.read_text(encoding="utf-8").replace(
            "  gateway:\n", f"  gateway:\n    port: {port}\n", 1
        )
        target = tmp_path / "busy.yaml"
        target.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=rf"field services\.gateway\.port: port {port}"):
            lifecycle.up(target)
    assert not (runtime_dir / "local" / "state.json").exists()


def test_down_stops_every_process(runtime_dir: Path, no_leftovers: None) -> None:
    state, _ = lifecycle.up(LOCAL)
    pids = [state.pid, *state.replica_pids]
    monitoring = 2 if find_binaries() else 0  # Prometheus and Alertmanager, where installed
    assert len(pids) == 1 + 12 + monitoring
    assert lifecycle.down(state.target)
    assert not any(pid_alive(p) for p in pids)
    assert lifecycle.running(state.target) is None


def test_replicas_die_with_a_killed_daemon(runtime_dir: Path, no_leftovers: None) -> None:
    state, _ = lifecycle.up(LOCAL)
    os.kill(state.pid, signal.SIGKILL)
    assert wait_for(lambda: not any(pid_alive(p) for p in state.replica_pids), 10)
    assert lifecycle.running(state.target) is None


def test_daemon_stops_when_its_owner_dies(runtime_dir: Path, no_leftovers: None) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state, _ = lifecycle.up(LOCAL, owner_pid=owner.pid)
    finally:
        owner.kill()
        owner.wait()
    assert wait_for(lambda: not pid_alive(state.pid), 10)
    assert wait_for(lambda: not any(pid_alive(p) for p in state.replica_pids), 10)


def test_any_http_server_command_can_be_a_service(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    (tmp_path / "index.html").write_text("hello from a plain server", encoding="utf-8")
    target = tmp_path / "plain.yaml"
    target.write_text(
        "name: plain\n"
        "kind: local\n"
        "platform: {zones: [a, b], gateway: web}\n"
        "services:\n"
        "  web:\n"
        f"    command: ['{{python}}', '-m', 'http.server', '--bind', '127.0.0.1',\n"
        f"              '--directory', '{tmp_path}', '{{port}}']\n"
        "    replicas: 2\n"
        "    health: {ready: /index.html, live: /index.html}\n",
        encoding="utf-8",
    )
    state, _ = lifecycle.up(target)
    try:
        with httpx.Client(base_url=state.gateway_url) as web:
            assert web.get("/index.html").text == "hello from a plain server"
        with lifecycle.PlatformClient(state) as client:
            assert sorted(r["zone"] for r in client.replicas()) == ["a", "b"]
    finally:
        lifecycle.down(state.target)


def test_only_replicas_not_needed_to_serve_yet_start_at_low_priority(tmp_path: Path) -> None:
    # All zones share this machine's cores (see kubelet.START_NICE): restarts after a crash
    # and a canary's replicas beside a serving stable version wait for the CPU; new capacity
    # (first starts, scale-ups, a version that takes all the traffic) does not.
    target = load_target(Path(__file__).resolve().parents[2] / "targets" / "local.yaml")

    async def decide() -> list[bool]:
        sup = Supervisor(target, tmp_path, dict.fromkeys(target.services, 0))
        catalog = sup.services["catalog"]

        def replica(version: str, crashes: int = 0) -> Replica:
            made = Replica(id="r", service="catalog", version=version, zone="a", port=0, env={})
            made.consecutive_crashes = crashes
            return made

        found = [
            sup.kubelet.can_wait(replica("v1")),
            sup.kubelet.can_wait(replica("v1", crashes=1)),
        ]
        catalog.weights = {"v1": 0.8, "v2": 0.2}
        found.append(sup.kubelet.can_wait(replica("v2")))
        catalog.weights = {"v1": 0.0, "v2": 1.0}
        found.append(sup.kubelet.can_wait(replica("v2")))
        return found

    assert asyncio.run(decide()) == [False, True, True, False]


def test_a_health_path_never_ready_is_named_in_the_timeout(
    tmp_path: Path, runtime_dir: Path, no_leftovers: None
) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text(
        "name: mine\nkind: local\nplatform: {gateway: web, zones: [a], ready_timeout_s: 2}\n"
        "services:\n  web:\n    command: ['{python}', -m, http.server, --bind, 127.0.0.1,"
        " '{port}']\n    replicas: 1\n    health: {ready: /nope}\n",
        encoding="utf-8",
    )
    with pytest.raises(PlatformError) as caught:
        lifecycle.up(target)
    message = " ".join(str(caught.value).split())
    assert "not every replica became ready within platform.ready_timeout_s=2 s" in message
    assert re.search(r"web-0 \(\w+, readiness probe GET /nope not answered 2xx/3xx;", message)
    assert "field services.web.health.ready" in message
