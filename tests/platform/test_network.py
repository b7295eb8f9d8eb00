"""Packet loss in the data path (nftables): applied by the kernel, removed however a platform ends.

Needs root and nftables (``.ci/run`` installs it as root); skipped, with the reason, without.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import LOCAL, platform_up

from shakeout._process import wait_for
from shakeout.platform import lifecycle
from shakeout.platform.network import TABLE_PREFIX, PacketLoss, remove_stale_tables, unavailable
from shakeout.platform.replicas import free_port
from shakeout.platform.state import pid_alive

MISSING = unavailable()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def _tables() -> list[str]:
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    return [line.split()[-1] for line in listed.stdout.splitlines()]


def _answers(port: int) -> bool:
    """One connect and one HTTP exchange within 0.5 s each."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.settimeout(0.5)
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


@pytest.fixture
def server() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: _answers(port), 10)
        yield port
    finally:
        process.kill()
        process.wait()


def test_full_loss_cuts_the_port_off_and_clearing_removes_the_table(server: int) -> None:
    loss = PacketLoss(f"{TABLE_PREFIX}{os.getpid()}")
    try:
        loss.set("b", [server], 100)
        assert loss.table in _tables()
        assert not _answers(server)
        loss.set("b", [server], 0)
        assert loss.table not in _tables()
        assert _answers(server)
    finally:
        loss.clear()
    assert loss.table not in _tables()


def test_the_table_of_a_dead_daemon_is_removed_and_a_live_one_kept(server: int) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(gone.stdout)
    assert not pid_alive(dead_pid)
    dead, live = PacketLoss(f"{TABLE_PREFIX}{dead_pid}"), PacketLoss(f"{TABLE_PREFIX}{os.getpid()}")
    try:
        dead.set("a", [server], 100)
        live.set("a", [server], 1)
        assert remove_stale_tables() == [dead.table]
        assert live.table in _tables()
        assert dead.table not in _tables()
    finally:
        live.clear()
        dead.clear()


def test_a_daemon_killed_outright_leaves_no_packet_loss_behind(tmp_path: Path) -> None:
    with platform_up(LOCAL, tmp_path / "runtime") as state, lifecycle.PlatformClient(state) as c:
        answer = c.zone_packet_loss("c", 30)
        assert answer["percent"] == 30
        assert c.status()["zone_health"]["c"]["world"] == "losing 30% of packets"
        assert f"{TABLE_PREFIX}{state.pid}" in _tables()
        os.kill(state.pid, signal.SIGKILL)  # no chance to remove its table
        assert wait_for(lambda: not pid_alive(state.pid), 10)
        assert f"{TABLE_PREFIX}{state.pid}" in _tables()
    # platform_up's way out is `lifecycle.down`, as `shakeout platform down` after a crash
    assert f"{TABLE_PREFIX}{state.pid}" not in _tables()
