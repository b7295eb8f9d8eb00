"""``python -m shakeout.services.migration``: the entry point the migration Job runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shakeout.services import migration


def _store(path: Path, orders: int) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migration.ensure_schema(conn)
    for i in range(orders):
        items = json.dumps([{"product_id": "p1", "quantity": 3}])
        row = (f"o{i}", f"k{i}", items, 500, f"c{i}", f"r{i}", "confirmed", float(i))
        migration.insert(conn, "orders", row, ignore=False)
    conn.close()
    return path


def test_main_migrates_both_ways_and_prints_each_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _store(tmp_path / "orders.sqlite3", orders=7)
    assert migration.main(["--db", str(db), "--to", "v2", "--step-pause-s", "0"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "migration_started"
    steps = [line["step"] for line in lines if line["event"] == "migration_step"]
    assert steps == ["expand", "backfill", "switch_reads", "contract"]
    assert lines[-1] == {
        "event": "migration_completed", "to": "v2", "mode": "online",
        "schema": "v2", "target": None, "phase": "stable",
    }  # fmt: skip
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT SUM(item_count) FROM orders_v2").fetchone() == (21,)
    conn.close()
    assert migration.main(["--db", str(db), "--to", "v1", "--step-pause-s", "0"]) == 0
    assert migration.main(["--db", str(db), "--to", "v1", "--step-pause-s", "0"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # the second run back to v1 had nothing to do: started and completed, no step
    assert [line["event"] for line in out][-2:] == ["migration_started", "migration_completed"]
    conn = sqlite3.connect(db)
    assert migration.read_state(conn).schema == "v1"
    assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (7,)
    conn.close()


def test_main_refuses_a_missing_store_without_creating_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "nowhere" / "orders.sqlite3"
    assert migration.main(["--db", str(db), "--to", "v2"]) == 1
    assert "no orders store at" in capsys.readouterr().err
    assert not db.exists()


def test_main_rejects_an_unknown_schema(tmp_path: Path) -> None:
    db = _store(tmp_path / "orders.sqlite3", orders=1)
    with pytest.raises(SystemExit) as exc:
        migration.main(["--db", str(db), "--to", "v3"])
    assert exc.value.code == 2


def test_main_reports_a_file_that_is_not_an_orders_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "orders.sqlite3"
    sqlite3.connect(db).close()  # a database without schema_state
    assert migration.main(["--db", str(db), "--to", "v2"]) == 1
    assert "schema_state" in capsys.readouterr().err
