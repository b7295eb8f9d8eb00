"""The secret store: where the shared key lives, and its observable side.

The store is the shared-key file the supervisor writes (``Supervisor.write_secret``, a
``shakeout.contracts.SharedKeyDocument``); services poll it every ``platform.secrets.refresh_s``
and keep their cached key for ``platform.secrets.cache_ttl_s`` when it is unreachable
(``KeyStore`` in ``shakeout.services._keys``).

Where it lives: never in the runtime folder (``reports/platform/<target>/`` by default, which
teams archive with the rest of ``reports/``), but in a private folder of the user's own, mode
0700, its files 0600: ``$XDG_RUNTIME_DIR/shakeout/<target>-<hash>/`` where that directory is
usable, else ``<temp dir>/shakeout-<uid>/<target>-<hash>/`` (``<hash>``: of the runtime
folder, so that two runtime folders never share a store). It is created when the platform
starts (:func:`open_store`) and removed when it stops (:func:`remove_store`): by the daemon on
its way out, and again by ``shakeout platform down`` (or the next start) after a daemon that
was killed outright. The runtime folder keeps only a pointer to it (``secret-store.json``: the
folder and the daemon's pid, no key), removed with it.

The rest of this module lets the platform, the faults and the reports see the store at work,
always by key id (``shakeout.contracts.key_id``, a fingerprint), never by key: every replica's
key id and whether it serves from the store or its cache, a check that the previous key is
refused once the overlap is over, and an audit record per rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from shakeout.contracts import KEY_HEADER, SharedKeyDocument, key_id
from shakeout.errors import PlatformError
from shakeout.platform.config import replica_status
from shakeout.platform.state import pid_alive, write_private

if TYPE_CHECKING:
    from shakeout.platform.view import ClusterView as Supervisor  # the view, not the class

AUDIT_FILENAME = "audit.log"
SECRET_FILENAME = "shared-key.json"
"""The store's file, in the platform's private folder (see :func:`store_dir`)."""
POINTER_FILENAME = "secret-store.json"
"""In the runtime folder: where the store is and which daemon owns it (no key)."""
KEY_CHECK_PATH = "/v1/key-check"
"""Any non-health path: the key gate answers before routing (401 refused, 404 accepted)."""


# -- where the store lives ---------------------------------------------------------------------


def _private(path: Path) -> bool:
    """Whether ``path`` is a real directory (not a link) of this user that nobody else can use."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not stat.S_IMODE(st.st_mode) & 0o077
    )


def private_root() -> Path:
    """This user's folder of secret stores: ``$XDG_RUNTIME_DIR/shakeout`` when that variable
    names a private directory of this user (as the login manager makes it), else
    ``<temp dir>/shakeout-<uid>`` (``tempfile.gettempdir()``: ``$TMPDIR`` or ``/tmp``)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg) and _private(Path(xdg)):
        return Path(xdg) / "shakeout"
    return Path(tempfile.gettempdir()) / f"shakeout-{os.getuid()}"


def store_dir(state_dir: Path) -> Path:
    """The private folder of the secret store of the platform whose runtime folder is
    ``state_dir``: named after the target and a hash of the folder's absolute path."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return private_root() / f"{state_dir.name}-{digest}"


def _make_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, or accept it when it already is this user's and not a
    link; anything else (a folder someone else made in a shared temp dir) is refused."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise PlatformError(f"{path}: cannot create the secret store's folder: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PlatformError(
            f"{path}: not a directory of this user; refusing to keep the shared key there "
            "(remove it, or set XDG_RUNTIME_DIR or TMPDIR to a private directory)"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)  # ours, made under a loose umask or by hand: close it


def open_store(state_dir: Path) -> Path:
    """Create the platform's private store folder (empty) and return its key file's path.

    Called by the daemon before it writes the first key. The pointer in the runtime folder is
    written first, so a store folder never exists without a record of where it is and whose.
    """
    directory = store_dir(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    pointer = {"store": str(directory), "pid": os.getpid()}
    write_private(state_dir / POINTER_FILENAME, json.dumps(pointer))
    _make_private_dir(directory.parent)  # this user's folder of stores (a temp dir's is shared)
    _make_private_dir(directory)
    _empty(directory)  # a store a killed daemon left: its keys go, the new one is fresh
    return directory / SECRET_FILENAME


def _empty(directory: Path) -> None:
    """Remove every file in a store folder (never following a link, never recursing)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in directory.iterdir():
            if not entry.is_dir() or entry.is_symlink():
                entry.unlink(missing_ok=True)


def _daemon_alive(pid: int) -> bool:
    """Whether ``pid`` is a live platform daemon (not a process that reused a dead one's pid)."""
    if not pid_alive(pid):
        return False
    try:
        return b"shakeout.platform.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False  # ended meanwhile
    except OSError:
        return True  # alive, and not ours to read: leave its store alone


def remove_store(state_dir: Path) -> bool:
    """Remove the secret store of the platform whose runtime folder is ``state_dir``, and its
    pointer; True when a store folder was removed.

    Left alone while the daemon that made it (the pointer's pid) is alive, unless this is that
    daemon: so ``shakeout platform down`` (after the daemon is gone), a start finding a
    killed daemon's leftovers, and the daemon itself on its way out may all call it. Only this
    platform's folder is touched: the pointer's folder must be named as :func:`store_dir`
    names it, and only its files are removed (no link is followed, nothing recursed into).
    """
    pointer_file = state_dir / POINTER_FILENAME
    expected = store_dir(state_dir)
    candidates = {expected}
    try:
        pointer = json.loads(pointer_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pointer = None
    except (OSError, ValueError):
        pointer = {}  # unreadable: nobody vouches for the store, remove what we can find
    if isinstance(pointer, dict):
        owner = pointer.get("pid")
        if isinstance(owner, int) and owner != os.getpid() and _daemon_alive(owner):
            return False
        recorded = Path(str(pointer.get("store", "")))
        if recorded.is_absolute() and recorded.name == expected.name:
            candidates.add(recorded)  # made under another XDG_RUNTIME_DIR or TMPDIR
    removed = False
    for directory in candidates:
        if not _private(directory):
            continue
        _empty(directory)
        with contextlib.suppress(OSError):
            directory.rmdir()
            removed = True
    pointer_file.unlink(missing_ok=True)
    return removed


# -- the store at work --------------------------------------------------------------------------


def audit(supervisor: Supervisor, action: str, **detail: Any) -> None:
    """Append one JSON line to the state dir's audit log (never a key, only key ids)."""
    record = {"t": time.time(), "action": action, **detail}
    with (supervisor.state_dir / AUDIT_FILENAME).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _read_store(path: Path) -> SharedKeyDocument | None:
    try:
        return SharedKeyDocument.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store_view(supervisor: Supervisor) -> dict[str, Any]:
    """The store as the platform sees it: reachable or not, current and previous key ids."""
    reachable = supervisor.secret_file.exists()
    data = _read_store(supervisor.secret_file) or _read_store(
        supervisor.secret_file.with_suffix(".offline")
    )
    if data is None:
        return {"reachable": reachable, "key_id": None, "previous_key_id": None}
    previous = data.previous
    return {
        "reachable": reachable,
        "key_id": key_id(data.current),
        "previous_key_id": key_id(previous) if previous else None,
        "rotated_at": data.rotated_at,
        "overlap_s": data.overlap_s,
        "previous_valid_for_s": max(0.0, round(data.previous_until - time.time(), 3))
        if previous
        else 0.0,
    }


async def key_status(supervisor: Supervisor) -> dict[str, Any]:
    """Every live replica's key id and source (store/cache/none) beside the store's key id."""
    store = store_view(supervisor)
    replicas = [
        r
        for svc in supervisor.services.values()
        for r in svc.replicas
        if r.process is not None and r.state in ("starting", "running")
    ]
    statuses = await asyncio.gather(*(replica_status(supervisor, r) for r in replicas))
    rows = []
    for replica, status in zip(replicas, statuses, strict=True):
        key = status["key"] if status is not None else {}
        rows.append(
            {
                "id": replica.id,
                "service": replica.service,
                "answered": status is not None,
                "key_id": key.get("key_id"),
                "source": key.get("source"),
                "cached_for_s": key.get("cached_for_s"),
                "error": key.get("error"),
            }
        )
    current = store["key_id"]
    return {
        "store": store,
        "replicas": rows,
        "all_current": bool(rows) and all(r["key_id"] == current for r in rows),
        "on_cache": [r["id"] for r in rows if r["source"] == "cache"],
        "without_key": [r["id"] for r in rows if r["answered"] and r["source"] == "none"],
    }


async def probe_old_key(supervisor: Supervisor, service: str) -> dict[str, Any]:
    """Call one running replica of ``service`` with the previous key: is it refused (401)?"""
    svc = supervisor.find_service(service)
    data = _read_store(supervisor.secret_file)
    if data is None:
        raise PlatformError("the secret store is down: cannot read the previous key")
    previous = data.previous
    if not previous:
        raise PlatformError("no previous key: the shared key was never rotated")
    live = [r for r in svc.replicas if r.process is not None and r.state == "running"]
    if not live:
        raise PlatformError(f"{service}: no running replica to call")
    replica = live[0]
    session = supervisor.http_client
    assert session is not None
    status: int | None = None
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with session.get(
            replica.url + KEY_CHECK_PATH,
            headers={KEY_HEADER: previous},
            timeout=aiohttp.ClientTimeout(total=2.0),
        ) as response:
            status = response.status
    return {
        "service": service,
        "replica": replica.id,
        "previous_key_id": key_id(previous),
        "status": status,
        "refused": status == 401,
    }


async def watch_outage(supervisor: Supervisor) -> None:
    """After the store goes down: record which replicas serve from cache and which lost the key."""
    await asyncio.sleep(2 * supervisor.spec.secrets.refresh_s + 0.5)  # let every replica poll
    if supervisor.secret_file.exists():
        return
    status = await key_status(supervisor)
    supervisor.event(
        "credentials_cached",
        on_cache=status["on_cache"],
        without_key=status["without_key"],
        cache_ttl_s=supervisor.spec.secrets.cache_ttl_s,
    )
