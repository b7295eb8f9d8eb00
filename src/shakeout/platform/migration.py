"""The orders store's schema migration job, run by the platform against the shared database.

The steps and the coordination with the orders replicas are in
``shakeout.services.migration``; this job runs them in a worker thread (SQLite is blocking),
one migration at a time, and turns each step into a ``migration_step`` platform event.
``platform.migration`` in the target file picks ``online`` (expand, dual write, backfill, switch
reads, contract) or ``offline`` (copy, then switch: loses the writes made during the copy).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from shakeout.errors import PlatformError
from shakeout.services import migration
from shakeout.services.orders import DB_FILENAME

if TYPE_CHECKING:
    from shakeout.platform.view import ClusterView


class MigrationJob:
    """Runs schema migrations of the orders store, one at a time."""

    def __init__(self, supervisor: ClusterView) -> None:
        """Bind to a supervisor; the database is the orders replicas' one in its data dir."""
        self.supervisor = supervisor
        self.spec = supervisor.spec.migration
        self.path = supervisor.data_dir / DB_FILENAME
        self.running = False
        self.last: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise PlatformError(f"no orders store at {self.path}: is the orders service running?")
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _state(self) -> dict[str, Any]:
        conn = self._connect()
        try:
            return {
                **migration.read_state(conn).as_dict(),
                "tables": migration.existing_tables(conn),
            }
        finally:
            conn.close()

    async def status(self) -> dict[str, Any]:
        """The store's schema state, whether a migration runs, and the last one's outcome."""
        state = await asyncio.to_thread(self._state)
        return {**state, "mode": self.spec.mode, "running": self.running, "last": self.last}

    async def migrate(self, to: str) -> dict[str, Any]:
        """Migrate the store to schema ``to`` (``v1`` or ``v2``); returns the outcome."""
        if to not in migration.SCHEMAS:
            raise PlatformError(f"unknown schema {to!r} (known: {', '.join(migration.SCHEMAS)})")
        sup = self.supervisor
        loop = asyncio.get_running_loop()
        mode = self.spec.mode

        def step(name: str, figures: dict[str, Any]) -> None:
            # Called from the worker thread: events are recorded on the loop's thread.
            loop.call_soon_threadsafe(
                functools.partial(
                    sup.event, "migration_step", step=name, to=to, mode=mode, **figures
                )
            )

        def run() -> migration.State:
            conn = self._connect()
            try:
                return migration.migrate(
                    conn,
                    to,
                    mode=mode,
                    step=step,
                    step_pause_s=self.spec.step_pause_s,
                    batch_rows=self.spec.batch_rows,
                )
            finally:
                conn.close()

        async with self._lock:
            now = await asyncio.to_thread(self._state)
            if now["schema"] == to and now["target"] is None:  # a repeated revert: no-op
                return {"status": "unchanged", "to": to, "mode": mode, **now}
            self.running = True
            started = time.monotonic()
            sup.event("migration_started", to=to, mode=mode)
            try:
                state = await asyncio.to_thread(run)
            except (sqlite3.Error, OSError) as exc:
                self.last = {"status": "failed", "to": to, "mode": mode, "error": str(exc)}
                sup.event("migration_failed", to=to, mode=mode, error=str(exc))
                return self.last
            finally:
                self.running = False
            took = round(time.monotonic() - started, 3)
            self.last = {
                "status": "completed",
                "to": to,
                "mode": mode,
                "took_s": took,
                **state.as_dict(),
            }
            sup.event("migration_completed", to=to, mode=mode, took_s=took)
            return self.last
