"""Network faults in the data path: the kernel drops a share of a zone's packets (nftables).

Chaos Mesh's NetworkChaos drops or delays a pod's packets with ``tc netem`` in the pod's
network namespace: the pod and its callers see lost segments, TCP retransmissions, slow
connects, and nothing tells the mesh. The embedded platform does the same on loopback with an
nftables table of its own (``inet shakeout-<daemon pid>``): every TCP segment to or from the
ports of a zone's replicas is dropped with the fault's probability (``numgen random``), in
both directions, for every caller alike (the router, the probes, other replicas). The router
is never told; its timeouts, retries and ejections have to cope.

Loss only: this needs root, the ``nft`` tool (Debian's ``nftables``) and nf_tables in the
kernel; latency would need ``netem``, which kernels built without it (as this machine's) lack,
so network latency stays a cluster fault. Written by hand: the rules are a few lines of the
``nft`` language, applied atomically with ``nft -f`` (no well-kept Python binding wraps them).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from shakeout.errors import PlatformError
from shakeout.platform.state import pid_alive

TABLE_PREFIX = "shakeout-"
INSTALL_HINT = "needs root and nftables in the kernel and on PATH (apt-get install nftables)"


def _nft(script: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nft", *args] if script is None else ["nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def unavailable() -> str | None:
    """Why packet loss cannot be applied here, or None when it can."""
    if os.geteuid() != 0 or shutil.which("nft") is None:
        return f"packet loss on the embedded platform {INSTALL_HINT}"
    done = _nft(None, "list", "tables")
    if done.returncode != 0:
        return f"packet loss on the embedded platform {INSTALL_HINT}: {done.stderr.strip()}"
    return None


class PacketLoss:
    """The loss applied to each zone (its replicas' ports and a percentage), as one table."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.zones: dict[str, tuple[list[int], int]] = {}

    def set(self, zone: str, ports: list[int], percent: int) -> None:
        """Drop ``percent``% of the segments to and from ``ports`` (0: none, for that zone)."""
        if percent > 0 and ports:
            reason = unavailable()
            if reason is not None:
                raise PlatformError(reason)
            self.zones[zone] = (sorted(ports), percent)
        else:
            self.zones.pop(zone, None)
        self._apply()

    def clear(self) -> None:
        """No loss anywhere: the table is removed (nothing to do when none was applied)."""
        if self.zones:
            self.zones.clear()
            self._apply()

    def _apply(self) -> None:
        rules = []
        for ports, percent in self.zones.values():
            match = "{ " + ", ".join(str(p) for p in ports) + " }"
            chance = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
            for direction in ("dport", "sport"):
                rules.append(f"tcp {direction} {match} {chance}drop")
        # Replace the whole table in one transaction: declare it (so the delete cannot fail),
        # delete it, and write it again when any zone still loses packets.
        script = f"table inet {self.table}\ndelete table inet {self.table}\n"
        if rules:
            chain = "\n    ".join(rules)
            script += (
                f"table inet {self.table} {{\n  chain output {{\n"
                f"    type filter hook output priority 0; policy accept;\n    {chain}\n  }}\n}}\n"
            )
        elif unavailable() is not None:
            return  # nothing applied, and nothing could have been
        done = _nft(script)
        if done.returncode != 0:
            raise PlatformError(f"nft could not apply packet loss: {done.stderr.strip()}")


def remove_stale_tables() -> list[str]:
    """Remove the tables of platforms whose daemon is gone (killed outright, its table stayed).
    Returns the tables removed."""
    if unavailable() is not None:
        return []
    listed = _nft(None, "list", "tables")
    removed = []
    for line in listed.stdout.splitlines():
        parts = line.split()
        name = parts[-1] if len(parts) == 3 and parts[:2] == ["table", "inet"] else ""
        pid = name[len(TABLE_PREFIX) :]
        stale = name.startswith(TABLE_PREFIX) and pid.isdigit() and not pid_alive(int(pid))
        if stale and _nft(None, "delete", "table", "inet", name).returncode == 0:
            removed.append(name)
    return removed
