"""Orders: durable, idempotent orders in SQLite shared by every replica (internal service).

Which table holds the orders depends on the store's schema state (see ``migration``): every
write reads it inside its own write transaction and every read inside its read snapshot, so the
platform can migrate the store online while the replicas keep serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import migration
from ._keys import key_store
from ._middleware import build_app, json_error
from ._requests import (
    ApiError,
    LineItem,
    parse_ids,
    parse_int_field,
    parse_items,
    parse_str_field,
    read_json,
    require_idempotency_key,
)
from ._settings import load_settings

log = logging.getLogger("shakeout.services.orders")

T = TypeVar("T")

DB_FILENAME = "orders.sqlite3"
_LOOKUP_CHUNK = 500
_COLUMNS = "order_id, items, total_cents, charge_id, reservation_id, status, created_at"


def _row_to_order(row: Sequence[Any]) -> dict[str, Any]:
    order_id, items, total_cents, charge_id, reservation_id, status, created_at = row
    return {
        "order_id": order_id,
        "items": json.loads(items),
        "total_cents": total_cents,
        "charge_id": charge_id,
        "reservation_id": reservation_id,
        "status": status,
        "created_at": created_at,
    }


class OrderStore:
    """Orders in one SQLite file (WAL, synchronous=FULL), safe across threads and processes.

    Blocking methods: call them through ``run_in_threadpool``. Connections are pooled, each
    used by one thread at a time, and all closed by ``close``.
    """

    def __init__(self, path: Path) -> None:
        """Remember the database path; nothing is opened until ``open``."""
        self.path = path
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self.ready = False
        self.closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        """A pooled connection inside one transaction, committed on success."""
        with self._connection() as conn:
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.closed:
                raise sqlite3.ProgrammingError("order store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._lock:
                if self.closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def open(self) -> None:
        """Create the directory, switch the file to WAL and create the schema (idempotent)."""
        if self.ready:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"{self.path}: cannot use WAL (mode {mode})")
            migration.ensure_schema(conn)
        self.ready = True

    def close(self) -> None:
        """Close every connection; later calls fail."""
        with self._lock:
            self.closed = True
            self.ready = False
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def create(
        self,
        idempotency_key: str,
        items: Sequence[LineItem],
        total_cents: int,
        charge_id: str,
        reservation_id: str,
        status: str = "confirmed",
    ) -> tuple[dict[str, Any], bool]:
        """Insert and commit an order; ``(order, created)``, the existing one if the key is used.

        ``status`` is ``confirmed``, or ``payment_pending`` when the gateway deferred the
        payment (payments slow, failing or its circuit breaker open)."""
        lines = [{"product_id": i.product_id, "quantity": i.quantity} for i in items]
        order: dict[str, Any] = {
            "order_id": uuid.uuid4().hex,
            "items": lines,
            "total_cents": total_cents,
            "charge_id": charge_id,
            "reservation_id": reservation_id,
            "status": status,
            "created_at": time.time(),
        }
        row = (
            order["order_id"],
            idempotency_key,
            json.dumps(lines, separators=(",", ":")),
            total_cents,
            charge_id,
            reservation_id,
            status,
            order["created_at"],
        )
        # BEGIN IMMEDIATE takes the write lock first: the schema state read here cannot change
        # before this order commits (the migration job changes it under the same lock).
        with self._transaction("BEGIN IMMEDIATE") as conn:
            tables = migration.read_state(conn).write_tables
            created = migration.insert(conn, tables[0], row, ignore=False)
            existing = None
            if created:
                for other in tables[1:]:  # dual write during a migration
                    migration.insert(conn, other, row, ignore=True)
            else:
                existing = conn.execute(
                    f"SELECT {_COLUMNS} FROM {tables[0]} WHERE idempotency_key = ?",
                    (idempotency_key,),
                ).fetchone()
        if created:
            return order, True  # committed, synchronous=FULL
        if existing is None:
            raise sqlite3.IntegrityError(f"order for key {idempotency_key!r} vanished")
        return _row_to_order(existing), False

    def get(self, order_id: str) -> dict[str, Any] | None:
        """The order with this id, or None."""
        with self._transaction() as conn:
            table = migration.read_state(conn).read_table
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {table} WHERE order_id = ?", (order_id,)
            ).fetchone()
        return None if row is None else _row_to_order(row)

    def lookup(self, ids: Sequence[str]) -> tuple[list[str], list[str], dict[str, list[str]]]:
        """Split ``ids`` into found and missing (keeping their order), plus duplicates.

        Duplicates: idempotency keys of these orders that have more than one order id in any
        orders table (zero by construction; a broken migration could create some).
        """
        present: set[str] = set()
        with self._transaction() as conn:
            table = migration.read_state(conn).read_table
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT order_id FROM {table} WHERE order_id IN ({marks})", chunk
                ).fetchall()
                present.update(r[0] for r in rows)
            dups = migration.duplicates(conn, ids)
        found = [i for i in ids if i in present]
        missing = [i for i in ids if i not in present]
        return found, missing, dups


ORDER_STATUSES = ("confirmed", "payment_pending")


def create_app() -> Starlette:
    """Build the orders app from the environment (needs SHAKEOUT_DATA_DIR)."""
    settings = load_settings("orders")
    if settings.data_dir is None:
        raise ValueError(f"{settings.service}: SHAKEOUT_DATA_DIR is required")
    keys = key_store(settings)
    store = OrderStore(settings.data_dir / DB_FILENAME)

    async def try_open() -> str | None:
        if store.ready:
            return None
        try:
            await run_in_threadpool(store.open)
        except (OSError, sqlite3.Error) as exc:
            log.warning("cannot open %s: %s", store.path, exc)
            return f"cannot open {store.path}: {exc}"
        return None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await try_open()
        try:
            yield
        finally:
            store.close()

    async def run_db(func: Callable[..., T], *args: Any) -> T:
        if not store.ready:
            raise ApiError("database not ready", status=503)
        try:
            return await run_in_threadpool(func, *args)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk full, ...
            log.warning("database error: %s", exc)
            raise ApiError(f"database error: {exc}", status=503) from None

    async def create_order(request: Request) -> Response:
        key = require_idempotency_key(request)
        body = await read_json(request)
        items = parse_items(body)
        total_cents = parse_int_field(body, "total_cents")
        charge_id = parse_str_field(body, "charge_id")
        reservation_id = parse_str_field(body, "reservation_id")
        status = body.get("status", "confirmed") if isinstance(body, dict) else "confirmed"
        if status not in ORDER_STATUSES:
            raise ApiError(f"field status: must be one of {', '.join(ORDER_STATUSES)}")
        order, created = await run_db(
            store.create, key, items, total_cents, charge_id, reservation_id, status
        )
        return JSONResponse(order, status_code=201 if created else 200)

    async def get_order(request: Request) -> Response:
        order = await run_db(store.get, request.path_params["order_id"])
        if order is None:
            return json_error(404, "not found")
        return JSONResponse(order)

    async def lookup(request: Request) -> Response:
        ids = parse_ids(await read_json(request))
        found, missing, dups = await run_db(store.lookup, ids)
        return JSONResponse({"found": found, "missing": missing, "duplicates": dups})

    routes = [
        Route("/orders", create_order, methods=["POST"]),
        Route("/orders/lookup", lookup, methods=["POST"]),
        Route("/orders/{order_id}", get_order, methods=["GET"]),
    ]
    app = build_app(settings, keys, routes, internal=True, ready_check=try_open, lifespan=lifespan)
    app.state.store = store
    return app
