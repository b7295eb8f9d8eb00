"""The secret store's observable side: which key each replica uses, old-key checks, audit log.

The store itself is the shared-key file the supervisor writes (``Supervisor.write_secret``, a
``shakeout.contracts.SharedKeyDocument``); services poll it every ``platform.secrets.refresh_s``
and keep their cached key for ``platform.secrets.cache_ttl_s`` when it is unreachable
(``KeyStore`` in ``shakeout.services._keys``). This module lets the platform, the faults and the
reports see that happen: every replica's key id and whether it serves from the store or its
cache, a check that the previous key is refused once the overlap is over, and an audit record
per rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from shakeout.contracts import KEY_HEADER, SharedKeyDocument, key_id
from shakeout.errors import PlatformError
from shakeout.platform.config import replica_status

if TYPE_CHECKING:
    from shakeout.platform.view import ClusterView as Supervisor  # the view, not the class

AUDIT_FILENAME = "audit.log"
KEY_CHECK_PATH = "/v1/key-check"
"""Any non-health path: the key gate answers before routing (401 refused, 404 accepted)."""


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
