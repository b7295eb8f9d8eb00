"""cgroup v2 groups for replicas: the freezer a container runtime uses, where the machine has one.

``docker pause`` and Kubernetes freeze a container with the cgroup v2 freezer (``cgroup.freeze``):
every process of the group stops at once, including ones it forks meanwhile, and, unlike
``SIGSTOP``, nothing in the group can tell (no stop state, no ``SIGCHLD`` to a parent that
would notice). ``cgroup.kill`` ends every process of the group, frozen or not.

The freezer needs a writable cgroup v2 hierarchy (root, on a unified or hybrid mount). Where
there is none the world falls back to process groups (``SIGSTOP`` to the group), which stop the
same processes. Written by hand: the kernel interface is a handful of files, and no well-kept
Python library wraps the v2 freezer (cgroupspy and libcgroup bindings are v1 only).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _cgroup2_mount() -> Path | None:
    """Where a cgroup v2 hierarchy is mounted (None: nowhere)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split(" ")[4])
    return None


def _own_path() -> str:
    """This process's cgroup v2 path (the ``0::`` line of /proc/self/cgroup)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
            if line.startswith("0::"):
                return line[3:].lstrip("/")
    return ""


def platform_cgroups() -> set[Path]:
    """Every platform's parent cgroup that exists now (``shakeout-<daemon pid>``)."""
    mount = _cgroup2_mount()
    if mount is None:
        return set()
    parent = mount / _own_path()
    try:
        return {p for p in parent.iterdir() if p.name.startswith("shakeout-") and p.is_dir()}
    except OSError:
        return set()


class Cgroups:
    """One cgroup per replica under ``<hierarchy>/<own cgroup>/shakeout-<pid>``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._of: dict[int, Path] = {}  # group leader pid -> its cgroup

    @classmethod
    def create(cls, name: str) -> Cgroups | None:
        """A parent cgroup for this platform, or None when the machine offers no writable
        cgroup v2 hierarchy with the freezer."""
        mount = _cgroup2_mount()
        if mount is None:
            return None
        base = mount / _own_path() / name
        try:
            base.mkdir(exist_ok=True)
        except OSError:
            return None
        if not (base / "cgroup.freeze").exists() or not cls._can_join(base):
            with contextlib.suppress(OSError):
                base.rmdir()
            return None
        return cls(base)

    @staticmethod
    def _can_join(base: Path) -> bool:
        """Whether a child can move itself into a cgroup under ``base``: a hierarchy can be
        writable and still refuse processes (a parent with controllers enabled for its
        children holds none itself), and a replica that cannot join must not fail to start."""
        probe = base / "probe"
        try:
            probe.mkdir()
        except OSError:
            return False
        try:
            done = subprocess.run(
                [sys.executable, "-c", ""],
                preexec_fn=Cgroups.join(probe),
                check=False,
                timeout=30,
            )
            return done.returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()

    def make(self, replica: str) -> Path:
        """A fresh cgroup for one start of a replica."""
        path = self.base / f"{replica}-{time.monotonic_ns()}"
        path.mkdir()
        return path

    @staticmethod
    def join(path: Path) -> Callable[[], None]:
        """A ``preexec_fn`` moving the child into ``path`` before it runs anything (writing
        0 to ``cgroup.procs`` moves the writer), so every process it forks is in it too."""
        procs = str(path / "cgroup.procs")

        def _join() -> None:  # pragma: no cover - runs in the child between fork and exec
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

        return _join

    def adopt(self, pid: int, path: Path) -> None:
        """Remember the cgroup of a started group leader."""
        self._of[pid] = path

    def has(self, pid: int) -> bool:
        """Whether ``pid`` leads a replica with its own cgroup."""
        return pid in self._of

    def freeze(self, pid: int, frozen: bool) -> bool:
        """Freeze or thaw every process of the replica's cgroup."""
        return self._write(pid, "cgroup.freeze", b"1" if frozen else b"0")

    def kill(self, pid: int) -> bool:
        """SIGKILL every process of the replica's cgroup, frozen ones included."""
        return self._write(pid, "cgroup.kill", b"1")

    def _write(self, pid: int, name: str, value: bytes) -> bool:
        path = self._of.get(pid)
        if path is None:
            return False
        try:
            (path / name).write_bytes(value)
        except OSError:
            return False
        return True

    async def release(self, pid: int) -> None:
        """The replica's leader exited: end what it left in its cgroup and remove it."""
        path = self._of.pop(pid, None)
        if path is not None:
            await self._remove(path)

    @staticmethod
    async def _remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_bytes(b"1")
        deadline = time.monotonic() + 2.0
        while True:  # cgroup.kill is asynchronous: poll until the group is empty
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # still busy: left for close()
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Remove every replica's cgroup and the platform's parent."""
        for pid in list(self._of):
            await self.release(pid)
        for left in [p for p in self.base.iterdir() if p.is_dir()] if self.base.exists() else []:
            await self._remove(left)
        with contextlib.suppress(OSError):
            self.base.rmdir()
