"""The orders store's schemas and the online migration between them (no web framework here).

Two schemas of the same orders:

* ``v1``: table ``orders`` (what the shop started with);
* ``v2``: table ``orders_v2``, the same rows plus ``item_count`` and ``currency`` columns.

Every orders replica and the platform's migration job share one SQLite database (WAL). The
single-row table ``schema_state`` says which schema is authoritative and, during a migration,
the target schema and the phase. Coordination needs no messages between replicas: a write reads
the state inside its own ``BEGIN IMMEDIATE`` transaction, and SQLite serialises writers, so a
phase change made by the migration job is seen by every write that commits after it.

Online migration (``migrate(..., mode="online")``), one step per phase, each a short
transaction: **expand** (create the target table, start dual writes) -> **backfill** (copy old
rows in small batches; new writes already go to both) -> **switch reads** (reads from the target;
writes still to both, so aborting loses nothing) -> **contract** (check nothing is missing, make
the target authoritative, drop the old table). Going back (``to="v1"``) is the same walk the
other way.

Offline migration (``mode="offline"``), the negative control: copy the table while writes keep
going to the old one only, then switch and drop the old table. Orders written during the copy
are lost, which the drill's "no acknowledged order is lost" check sees.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Schema = Literal["v1", "v2"]
Phase = Literal["stable", "dual_write", "backfill", "switch_reads", "copy"]
SCHEMAS: tuple[Schema, ...] = ("v1", "v2")
TABLES: dict[str, str] = {"v1": "orders", "v2": "orders_v2"}
BATCH_ROWS = 200

_DDL = {
    "v1": """
CREATE TABLE IF NOT EXISTS orders (
    order_id        TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    items           TEXT NOT NULL,
    total_cents     INTEGER NOT NULL,
    charge_id       TEXT NOT NULL,
    reservation_id  TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      REAL NOT NULL
)""",
    "v2": """
CREATE TABLE IF NOT EXISTS orders_v2 (
    order_id        TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    items           TEXT NOT NULL,
    item_count      INTEGER NOT NULL,
    total_cents     INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    charge_id       TEXT NOT NULL,
    reservation_id  TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      REAL NOT NULL
)""",
}
_STATE_DDL = """
CREATE TABLE IF NOT EXISTS schema_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    schema     TEXT NOT NULL,
    target     TEXT,
    phase      TEXT NOT NULL,
    updated_at REAL NOT NULL
)"""
CURRENCY = "EUR"

COLUMNS = (
    "order_id",
    "idempotency_key",
    "items",
    "total_cents",
    "charge_id",
    "reservation_id",
    "status",
    "created_at",
)
"""The columns both schemas have, in the order ``Row`` holds them."""

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class State:
    """The ``schema_state`` row: the authoritative schema, the target and the phase."""

    schema: Schema
    target: Schema | None
    phase: Phase

    @property
    def read_table(self) -> str:
        """The table reads use."""
        if self.target is not None and self.phase == "switch_reads":
            return TABLES[self.target]
        return TABLES[self.schema]

    @property
    def write_tables(self) -> list[str]:
        """The tables a new order is written to, the one whose constraints decide first."""
        if self.target is None or self.phase in ("stable", "copy"):
            return [TABLES[self.schema]]
        if self.phase == "switch_reads":
            return [TABLES[self.target], TABLES[self.schema]]
        return [TABLES[self.schema], TABLES[self.target]]

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {"schema": self.schema, "target": self.target, "phase": self.phase}


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the v1 table and the state row on a fresh database (idempotent)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_STATE_DDL)
        if conn.execute("SELECT 1 FROM schema_state WHERE id = 1").fetchone() is None:
            conn.execute(_DDL["v1"])
            conn.execute(
                "INSERT INTO schema_state VALUES (1, 'v1', NULL, 'stable', ?)", (time.time(),)
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def read_state(conn: sqlite3.Connection) -> State:
    """The current state (call it inside the transaction that acts on it)."""
    row = conn.execute("SELECT schema, target, phase FROM schema_state WHERE id = 1").fetchone()
    if row is None:
        raise sqlite3.OperationalError("schema_state has no row: the store was never opened")
    schema, target, phase = row
    return State(schema, target, phase)


def existing_tables(conn: sqlite3.Connection) -> list[str]:
    """The orders tables that exist right now."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    names = {r[0] for r in rows}
    return [t for t in TABLES.values() if t in names]


def insert(conn: sqlite3.Connection, table: str, row: Row, *, ignore: bool) -> bool:
    """Insert one order (``row`` in ``COLUMNS`` order) into ``table``; True if it was added.

    ``ignore`` skips a row whose order id or idempotency key is already there (dual writes and
    backfill); otherwise only a used idempotency key is skipped, as the orders API wants.
    """
    columns = list(COLUMNS)
    values = list(row)
    if table == TABLES["v2"]:
        lines = json.loads(row[2])
        columns += ["item_count", "currency"]
        values += [sum(int(line["quantity"]) for line in lines), CURRENCY]
    marks = ", ".join("?" * len(values))
    verb = "INSERT OR IGNORE" if ignore else "INSERT"
    tail = "" if ignore else " ON CONFLICT (idempotency_key) DO NOTHING"
    sql = f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks}){tail}"
    return bool(conn.execute(sql, values).rowcount == 1)


def _set_state(conn: sqlite3.Connection, schema: str, target: str | None, phase: str) -> None:
    conn.execute(
        "UPDATE schema_state SET schema = ?, target = ?, phase = ?, updated_at = ? WHERE id = 1",
        (schema, target, phase, time.time()),
    )


def _missing(conn: sqlite3.Connection, source: str, target: str) -> int:
    (count,) = conn.execute(
        f"SELECT COUNT(*) FROM {source} s WHERE NOT EXISTS"
        f" (SELECT 1 FROM {target} t WHERE t.order_id = s.order_id)"
    ).fetchone()
    return int(count)


def _count(conn: sqlite3.Connection, table: str) -> int:
    (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _copy(
    conn: sqlite3.Connection,
    source: str,
    target: str,
    batch_rows: int,
    pause: Callable[[float], None],
    batch_pause_s: float,
) -> int:
    """Copy rows missing from ``target`` in keyset-paginated batches, each its own transaction."""
    copied = 0
    after = ""
    select = (
        f"SELECT {', '.join(COLUMNS)} FROM {source} WHERE order_id > ? ORDER BY order_id LIMIT ?"
    )
    while True:
        with _Tx(conn):
            rows: Sequence[Row] = conn.execute(select, (after, batch_rows)).fetchall()
            for row in rows:
                copied += insert(conn, target, row, ignore=True)
        if len(rows) < batch_rows:
            return copied
        after = rows[-1][0]
        pause(batch_pause_s)  # lets the replicas' writes in between batches


def _copy_missing(conn: sqlite3.Connection, source: str, target: str) -> int:
    """Copy every row of ``source`` missing from ``target`` (inside the caller's transaction)."""
    rows = conn.execute(
        f"SELECT {', '.join(f's.{c}' for c in COLUMNS)} FROM {source} s WHERE NOT EXISTS"
        f" (SELECT 1 FROM {target} t WHERE t.order_id = s.order_id)"
    ).fetchall()
    return sum(insert(conn, target, row, ignore=True) for row in rows)


Step = Callable[[str, dict[str, Any]], None]
"""Called after each step with its name and figures (the platform turns it into an event)."""


def migrate(
    conn: sqlite3.Connection,
    to: Schema,
    *,
    mode: Literal["online", "offline"],
    step: Step,
    step_pause_s: float = 1.0,
    batch_rows: int = BATCH_ROWS,
    pause: Callable[[float], None] = time.sleep,
) -> State:
    """Migrate the store to schema ``to`` (see the module docstring); returns the final state.

    ``conn`` is an autocommit connection (``isolation_level=None``). A migration left half-way
    (``target`` set) is finished first when it heads to ``to``, or aborted when it does not
    (dropping the half-built table is safe before the contract step: the authoritative table got
    every write). ``pause`` holds each phase for ``step_pause_s`` so that load runs through it.
    """
    if to not in SCHEMAS:
        raise ValueError(f"unknown schema {to!r} (known: {', '.join(SCHEMAS)})")
    with _Tx(conn):
        state = read_state(conn)
        if state.target is not None and state.target != to:
            # Heading back before the contract step: drop the half-built table.
            conn.execute(f"DROP TABLE IF EXISTS {TABLES[state.target]}")
            _set_state(conn, state.schema, None, "stable")
            step("abort", {"from": state.phase, "dropped": TABLES[state.target]})
            state = State(state.schema, None, "stable")
    if state.schema == to and state.target is None:
        return state
    source, target = TABLES[state.schema], TABLES[to]
    if mode == "offline":
        return _offline(
            conn, state.schema, to, source, target, step, step_pause_s, batch_rows, pause
        )
    started = time.monotonic()
    with _Tx(conn):
        conn.execute(_DDL[to])
        _set_state(conn, state.schema, to, "dual_write")
    step("expand", {"table": target, "phase": "dual_write"})
    pause(step_pause_s)
    with _Tx(conn):
        _set_state(conn, state.schema, to, "backfill")
    copied = _copy(conn, source, target, batch_rows, pause, 0.02)
    with _Tx(conn):
        missing = _missing(conn, source, target)
    step("backfill", {"copied": copied, "missing": missing})
    pause(step_pause_s)
    with _Tx(conn):
        _set_state(conn, state.schema, to, "switch_reads")
    step("switch_reads", {"reads_from": target})
    pause(step_pause_s)
    with _Tx(conn):
        # Dual writes mean nothing should be missing; copy stragglers anyway before the drop,
        # inside the transaction that drops the old table, so no write can slip in between.
        late = _copy_missing(conn, source, target)
        rows = _count(conn, target)
        _set_state(conn, to, None, "stable")
        conn.execute(f"DROP TABLE {source}")
    step(
        "contract",
        {
            "dropped": source,
            "rows": rows,
            "late_copied": late,
            "took_s": round(time.monotonic() - started, 3),
        },
    )
    return State(to, None, "stable")


def _offline(
    conn: sqlite3.Connection,
    schema: Schema,
    to: Schema,
    source: str,
    target: str,
    step: Step,
    step_pause_s: float,
    batch_rows: int,
    pause: Callable[[float], None],
) -> State:
    """Copy, then switch and drop: writes made after their batch was copied are lost."""
    started = time.monotonic()
    with _Tx(conn):
        conn.execute(_DDL[to])
        _set_state(conn, schema, to, "copy")
    copied = _copy(conn, source, target, batch_rows, pause, 0.02)
    step("copy", {"copied": copied, "dual_write": False})
    pause(2 * step_pause_s)  # the new version rolls out; writes still go to the old table
    with _Tx(conn):
        lost = _missing(conn, source, target)
        rows = _count(conn, target)
        _set_state(conn, to, None, "stable")
        conn.execute(f"DROP TABLE {source}")
    step(
        "switch",
        {
            "dropped": source,
            "rows": rows,
            "rows_lost": lost,
            "took_s": round(time.monotonic() - started, 3),
        },
    )
    return State(to, None, "stable")


def duplicates(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    """For the given order ids: idempotency keys that map to more than one order, any table."""
    tables = existing_tables(conn)
    if not tables or not ids:
        return {}
    keys: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for table in tables:
            rows = conn.execute(
                f"SELECT idempotency_key FROM {table} WHERE order_id IN ({marks})", chunk
            ).fetchall()
            keys.update(r[0] for r in rows)
    found: dict[str, set[str]] = {}
    key_list = sorted(keys)
    for start in range(0, len(key_list), 500):
        chunk = key_list[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for table in tables:
            rows = conn.execute(
                f"SELECT idempotency_key, order_id FROM {table} WHERE idempotency_key IN ({marks})",
                chunk,
            ).fetchall()
            for key, order_id in rows:
                found.setdefault(key, set()).add(order_id)
    return {k: sorted(v) for k, v in found.items() if len(v) > 1}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shakeout.services.migration --db PATH --to v2``: migrate a store, then exit.

    The Kubernetes target's migration Job runs this against the orders store on the volume the
    orders pods share (the embedded platform calls :func:`migrate` in-process instead). Each step
    and the final state are printed as JSON lines (the Job's log). Exit status 0 once the store
    is at ``--to`` (nothing to do is success: a repeated revert is a no-op), 1 when the store is
    missing or SQLite fails, 2 on bad arguments.
    """
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m shakeout.services.migration",
        description="Migrate the orders store's schema (see shakeout.services.migration).",
    )
    parser.add_argument("--db", type=Path, required=True, help="path of the orders SQLite file")
    parser.add_argument("--to", choices=SCHEMAS, required=True, help="target schema")
    parser.add_argument("--mode", choices=("online", "offline"), default="online")
    parser.add_argument("--step-pause-s", type=float, default=1.0, help="hold of each phase")
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS, help="backfill batch")
    args = parser.parse_args(argv)

    def emit(kind: str, **fields: Any) -> None:
        print(json.dumps({"event": kind, **fields}), flush=True)

    # The orders replicas create the store; a missing file means the path is wrong, and
    # sqlite3.connect would silently create an empty database there.
    if not args.db.is_file():
        print(f"no orders store at {args.db}: is the orders volume mounted?", file=sys.stderr)
        return 1
    try:
        conn = sqlite3.connect(args.db, timeout=10.0, isolation_level=None)
        try:
            # The same settings as the platform's migration job (platform/migration.py).
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA synchronous = FULL")
            emit("migration_started", to=args.to, mode=args.mode, **read_state(conn).as_dict())
            state = migrate(
                conn,
                args.to,
                mode=args.mode,
                step=lambda name, figures: emit("migration_step", step=name, **figures),
                step_pause_s=args.step_pause_s,
                batch_rows=args.batch_rows,
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        print(f"{args.db}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    emit("migration_completed", to=args.to, mode=args.mode, **state.as_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
