"""Real uvicorn processes: crash-on-start, and two orders replicas sharing one database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import MakeApp

pytestmark = pytest.mark.anyio

KEY = {"X-Shakeout-Key": "key-one"}
STOP_DEADLINE_S = 5.0
READY_DEADLINE_S = 15.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    return free_ports(1)[0]


def service_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHAKEOUT_")
        and k not in {"CATALOG_URL", "ORDERS_URL", "PAYMENTS_URL", "INVENTORY_URL"}
    }
    return {**env, **extra}


def uvicorn_cmd(service: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"shakeout.services.{service}:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate, wait with a deadline, kill what is left."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_DEADLINE_S)


def test_crash_on_start_exits_1_before_binding(secret_file: Path, tmp_path: Path) -> None:
    port = free_port()
    env = service_env(
        SHAKEOUT_SECRET_FILE=str(secret_file),
        SHAKEOUT_CRASH_ON_START="1",
        SHAKEOUT_REPLICA="catalog-9",
    )
    proc = subprocess.Popen(
        uvicorn_cmd("catalog", port), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        stop([proc])
    assert proc.returncode == 1
    assert b"catalog-9: SHAKEOUT_CRASH_ON_START is set" in err
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def orders_replicas(secret_file: Path, tmp_path: Path) -> Iterator[list[str]]:
    """Two orders replicas (separate uvicorn processes) sharing one data dir; their base URLs."""
    data_dir = tmp_path / "shared-data"
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    urls = []
    try:
        for n, port in enumerate(free_ports(2)):
            log = (tmp_path / f"orders-{n}.log").open("wb")
            logs.append(log)
            env = service_env(
                SHAKEOUT_SERVICE="orders",
                SHAKEOUT_REPLICA=f"orders-{n}",
                SHAKEOUT_SECRET_FILE=str(secret_file),
                SHAKEOUT_DATA_DIR=str(data_dir),
            )
            processes.append(
                subprocess.Popen(
                    uvicorn_cmd("orders", port), env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        wait_ready(urls, processes, tmp_path)
        yield urls
    finally:
        stop(processes)
        for log in logs:
            log.close()


def wait_ready(urls: list[str], processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    pending = set(range(len(urls)))
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while pending:
            for n in sorted(pending):
                if processes[n].poll() is not None:
                    log = (logs / f"orders-{n}.log").read_text()
                    pytest.fail(f"orders-{n} exited with {processes[n].returncode}:\n{log}")
                try:
                    if client.get(f"{urls[n]}/readyz").status_code == 200:
                        pending.discard(n)
                except httpx.TransportError:
                    pass
            if pending and time.monotonic() > deadline:
                pytest.fail(f"orders replicas {sorted(pending)} not ready in {READY_DEADLINE_S} s")
            if pending:
                time.sleep(0.05)


async def test_two_replicas_same_idempotency_key_make_one_order(
    orders_replicas: list[str], tmp_path: Path
) -> None:
    body = {
        "items": [{"product_id": "p1", "quantity": 1}],
        "total_cents": 8999,
        "charge_id": "ch_x",
        "reservation_id": "res_x",
    }
    keys = [f"race-{n}" for n in range(5)]
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        requests = [
            client.post(f"{url}/orders", json=body, headers={**KEY, "Idempotency-Key": key})
            for key in keys
            for _ in range(3)
            for url in orders_replicas
        ]
        responses = await asyncio.gather(*requests)
        by_key: dict[str, list[httpx.Response]] = {}
        for response in responses:
            by_key.setdefault(response.request.headers["Idempotency-Key"], []).append(response)
        order_ids = []
        for key, answers in by_key.items():
            assert sorted(r.status_code for r in answers) == [200] * 5 + [201], key
            assert len({r.json()["order_id"] for r in answers}) == 1, key
            order_ids.append(answers[0].json()["order_id"])
        replicas = {r.headers["X-Shakeout-Replica"] for r in responses}
        for url in orders_replicas:  # every replica sees every order
            lookup = await client.post(f"{url}/orders/lookup", json={"ids": order_ids}, headers=KEY)
            assert lookup.json() == {"found": order_ids, "missing": [], "duplicates": {}}
    assert replicas == {"orders-0", "orders-1"}
    conn = sqlite3.connect(tmp_path / "shared-data" / "orders.sqlite3")
    try:
        rows = conn.execute(
            "SELECT idempotency_key, COUNT(*) FROM orders GROUP BY idempotency_key"
        ).fetchall()
    finally:
        conn.close()
    assert sorted(rows) == [(key, 1) for key in keys]


async def test_gateway_over_the_network_names_an_unreachable_dependency(
    make_app: MakeApp, serve: Any
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {f"{name}_URL": closed for name in ("CATALOG", "ORDERS", "PAYMENTS", "INVENTORY")}
    async with serve(make_app("gateway", env)) as client:
        response = await client.get("/api/products")
    assert response.status_code == 503
    assert response.json()["dependency"] == "catalog"
