"""Where a running embedded platform is recorded: one state file per target name.

The daemon writes ``<runtime dir>/<target name>/state.json`` once every replica is ready and
keeps its list of process ids current. The CLI, the drills and the Chaos Toolkit extension read
it to find the control API, its token and the gateway URL. The runtime directory is
``$SHAKEOUT_RUNTIME_DIR`` or ``./reports/platform``. The shared key is not kept there: the
secret store lives in a private folder outside it (``shakeout.platform.secrets``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shakeout.errors import PlatformError


def runtime_root() -> Path:
    """Directory that holds one folder per running platform."""
    configured = os.environ.get("SHAKEOUT_RUNTIME_DIR")
    return Path(configured) if configured else Path.cwd() / "reports" / "platform"


def state_dir(target_name: str) -> Path:
    """Runtime folder of one target's platform (logs, data, events, audit log, state file)."""
    return runtime_root() / target_name


@dataclass(frozen=True)
class PlatformState:
    """What a client needs to reach a running platform."""

    target: str
    target_file: str
    pid: int
    control_url: str
    token: str
    gateway_url: str
    services: dict[str, str]
    started_at: float
    owner_pid: int | None = None
    replica_pids: list[int] = field(default_factory=list)
    cgroup: str | None = None  # the replicas' parent cgroup, where the world made one
    prometheus_url: str | None = None  # None: not running (see monitoring_absent)
    alertmanager_url: str | None = None
    monitoring_absent: str | None = None  # why Prometheus and Alertmanager are not running

    @property
    def path(self) -> Path:
        """The state file this state lives in."""
        return state_dir(self.target) / "state.json"

    def write(self, directory: Path) -> None:
        """Write atomically, readable by the owner only (it holds the control token)."""
        directory.mkdir(parents=True, exist_ok=True)
        write_private(directory / "state.json", json.dumps(asdict(self), indent=2))


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text`` in a file only its owner can read.

    The temporary file is created with mode 0600 (never readable by others, whatever the
    umask, not even for the moment before a ``chmod``) and is never a link someone planted.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_state(target_name: str) -> PlatformState | None:
    """The recorded state of a target's platform, or None when none is recorded."""
    path = state_dir(target_name) / "state.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PlatformError(f"{path}: unreadable platform state file: {exc}") from exc
    try:
        return PlatformState(**data)
    except TypeError as exc:
        raise PlatformError(f"{path}: platform state file has unexpected fields: {exc}") from exc


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
