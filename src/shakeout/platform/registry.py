"""The image registry, and the node-side cache a replica's version is pulled into before it starts.

On a cluster the kubelet pulls a pod's image from a registry before it can start the pod, and
keeps it in the node's image cache; a registry that cannot be reached leaves new pods in
``ImagePullBackOff`` while pods already running, and new ones on nodes that hold the image,
are untouched. The embedded platform has the same two sides:

* **the registry** (the world's): a static HTTP server, the standard library's
  ``http.server`` in a process of its own, over a folder holding one manifest per pushed
  version (``v2/<service>/manifests/<version>``, as the registry API names them). A release
  pushes its version before it is deployed. A registry outage ends that process: nothing in
  the control plane is told, pulls simply fail;
* **the puller** (each node's, used by the kubelet): a replica starts only once its version's
  manifest is in its zone's node cache, fetched from the registry the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

import aiohttp

from shakeout._process import die_with_parent
from shakeout.platform.replicas import free_port

PULL_TIMEOUT_S = 1.0
"""A pull the registry has not answered within this fails (it is retried with a back-off)."""


class Registry:
    """The registry's process and its storage (``root``), serving on a port of its own."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where the nodes pull from."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def reachable(self) -> bool:
        """Whether the registry's process runs (the world's view; no controller reads it)."""
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        """The registry process's id while it runs."""
        return self._process.pid if self.reachable and self._process is not None else None

    def push(self, service: str, version: str) -> None:
        """Store ``service``'s ``version`` (what a release pipeline does before deploying)."""
        manifest = self.root / "v2" / service / "manifests" / version
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"service": service, "version": version}), "utf-8")

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the registry's process and wait until it accepts connections."""
        if self.reachable:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "http.server", str(self.port),
                "--bind", "127.0.0.1", "--directory", str(self.root),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL),
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while self.reachable and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)  # poll until it listens, under the deadline above

    async def stop(self) -> bool:
        """End the registry's process (an outage, or the platform stopping); False if it was
        not running."""
        process = self._process
        if process is None or process.returncode is not None:
            return False
        process.kill()
        await process.wait()
        return True


class ImagePuller:
    """The nodes' image caches: which versions each zone's node holds, pulled on first use."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url
        self.cached: set[tuple[str, str, str]] = set()  # (zone, service, version)
        self._session: aiohttp.ClientSession | None = None

    async def pull(self, zone: str, service: str, version: str) -> str | None:
        """Make sure ``zone``'s node holds ``service``'s ``version``: None when it does (or
        now does), else why the pull failed."""
        if (zone, service, version) in self.cached:
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PULL_TIMEOUT_S), trust_env=False
            )
        url = f"{self.registry_url}/v2/{service}/manifests/{version}"
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    return f"{url}: {response.status} (version not pushed?)"
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{url}: {type(exc).__name__} (registry unreachable?)"
        self.cached.add((zone, service, version))
        return None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
