"""Credential cache TTL, live config, and the orders store's schema migration, in process."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from shakeout.contracts import ServiceSettings
from shakeout.services import migration
from shakeout.services._config import ConfigStore
from shakeout.services._keys import KeyStore
from shakeout.services._requests import LineItem
from shakeout.services.flags import parse_config, validate_flags
from shakeout.services.orders import OrderStore

ITEMS = [LineItem("p1", 2), LineItem("p2", 1)]


def _key(path: Path, current: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"current": current, "previous": None}))
    os.replace(tmp, path)


# -- credentials -------------------------------------------------------------------------


def test_cached_key_serves_until_the_ttl_then_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    _key(path, "k1")
    now = [100.0]
    keys = KeyStore(path, check_interval_s=0.0, cache_ttl_s=0.3, clock=lambda: now[0])
    assert keys.source == "store"
    path.unlink()  # the store goes away
    keys.refresh()
    assert keys.loaded
    assert keys.accepts(b"k1")
    assert keys.source == "cache"
    assert "serving with cached key" in str(keys.error)
    now[0] += 0.299
    keys.refresh()
    assert keys.accepts(b"k1")  # the TTL is not over yet
    now[0] += 0.002
    keys.refresh()
    assert not keys.loaded
    assert not keys.accepts(b"k1")
    assert "cached key expired" in str(keys.error)
    _key(path, "k1")  # the store is back, with the same content: fetched again
    keys.refresh()
    assert keys.loaded
    assert keys.source == "store"
    assert keys.status()["cached_for_s"] is None


@pytest.mark.parametrize("refetch", [True, False])
def test_a_key_rotated_in_the_store_is_accepted_before_the_next_poll_only_with_refetch(
    tmp_path: Path, refetch: bool
) -> None:
    path = tmp_path / "k.json"
    _key(path, "k1")
    keys = KeyStore(path, check_interval_s=60.0, refetch_on_unknown=refetch)
    _key(path, "k2")  # rotated; this replica's next poll is a minute away
    assert keys.accepts(b"k2") is refetch
    assert not keys.accepts(b"nope")  # an unknown key is still refused either way


def test_no_cache_fails_closed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    _key(path, "k1")
    keys = KeyStore(path, check_interval_s=0.0, cache_ttl_s=0.0)
    path.unlink()
    keys.refresh()
    assert not keys.loaded
    assert keys.source == "none"


def test_settings_read_cache_and_config_variables(tmp_path: Path) -> None:
    env = {
        "SHAKEOUT_SECRET_FILE": str(tmp_path / "k.json"),
        "SHAKEOUT_CONFIG_FILE": str(tmp_path / "c.json"),
        "SHAKEOUT_KEY_CACHE_TTL_S": "0",
        "SHAKEOUT_KEY_REFRESH_S": "1.5",
    }
    settings = ServiceSettings.from_env("catalog", env)
    assert settings.config_file == tmp_path / "c.json"
    assert (settings.key_cache_ttl_s, settings.key_refresh_s) == (0.0, 1.5)
    with pytest.raises(ValueError, match="SHAKEOUT_KEY_CACHE_TTL_S"):
        ServiceSettings.from_env("catalog", {**env, "SHAKEOUT_KEY_CACHE_TTL_S": "soon"})


# -- live config -------------------------------------------------------------------------


def test_flags_are_validated_by_name_and_value() -> None:
    assert validate_flags({"catalog.pricing": "sale"}) == []
    assert "not one of" in validate_flags({"catalog.pricing": "sael"})[0]
    assert "unknown flag" in validate_flags({"nope": "x"})[0]


def test_canary_zones_see_the_canary_flags_others_the_base() -> None:
    data = {
        "version": 3,
        "flags": {"catalog.pricing": "list"},
        "canary": {"version": 4, "zones": ["a"], "flags": {"catalog.pricing": "sale"}},
    }
    assert parse_config(data, "a").flags["catalog.pricing"] == "sale"
    assert parse_config(data, "a").version == 4
    assert parse_config(data, "b").flags["catalog.pricing"] == "list"
    with pytest.raises(ValueError, match=r"canary\.zones"):
        parse_config({**data, "canary": {"zones": "a"}}, "a")


def test_config_store_rereads_counts_per_version_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"version": 1, "flags": {}, "canary": None}))
    config = ConfigStore(path, "a", check_interval_s=0.0)
    config.record(200)
    config.record(503)
    assert (config.version, config.requests, config.errors) == (1, 2, 1)
    path.write_text(json.dumps({"version": 2, "flags": {"catalog.pricing": "sale"}}))
    config.refresh()
    assert (config.version, config.flags["catalog.pricing"]) == (2, "sale")
    assert (config.requests, config.errors) == (0, 0)
    path.write_text("{broken")
    config.refresh()
    assert config.flags["catalog.pricing"] == "sale"
    assert "keeping config v2" in str(config.error)


# -- orders store migration --------------------------------------------------------------


def _store(tmp_path: Path) -> OrderStore:
    store = OrderStore(tmp_path / "orders.sqlite3")
    store.open()
    return store


def _conn(store: OrderStore) -> sqlite3.Connection:
    conn = sqlite3.connect(store.path, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _order(store: OrderStore, key: str) -> str:
    order, _ = store.create(key, ITEMS, 100, "ch", "res")
    return str(order["order_id"])


def test_online_migration_under_concurrent_writes_loses_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = [_order(store, f"old-{i}") for i in range(450)]  # more than two batches
    written: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            written.append(_order(store, f"new-{n}"))
            n += 1
            stop.wait(0.005)  # a busy shop, not a tight loop that starves the migration's lock

    steps: list[tuple[str, dict[str, Any]]] = []
    thread = threading.Thread(target=writer)
    thread.start()
    conn = _conn(store)
    try:
        state = migration.migrate(
            conn,
            "v2",
            mode="online",
            step=lambda name, figures: steps.append((name, figures)),
            step_pause_s=0.1,
        )
    finally:
        stop.set()
        thread.join(10)
    assert written  # orders were written while the migration ran
    assert state == migration.State("v2", None, "stable")
    assert [name for name, _ in steps] == ["expand", "backfill", "switch_reads", "contract"]
    assert migration.existing_tables(conn) == ["orders_v2"]
    ids = before + written
    found, missing, dups = store.lookup(ids)
    assert missing == []
    assert dups == {}
    assert len(found) == len(ids)
    (count,) = conn.execute("SELECT SUM(item_count) FROM orders_v2").fetchone()
    assert count == 3 * len(ids)  # the new column was filled for old and new rows
    # ...and back: the old schema again, the same orders, the same order ids.
    migration.migrate(conn, "v1", mode="online", step=lambda *a: None, step_pause_s=0.0)
    assert migration.existing_tables(conn) == ["orders"]
    assert store.lookup(ids)[1] == []
    assert store.get(before[0]) is not None
    replay, created = store.create("old-0", ITEMS, 100, "ch", "res")
    assert not created
    assert replay["order_id"] == before[0]
    conn.close()
    store.close()


def test_offline_migration_loses_the_writes_made_during_the_copy(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = [_order(store, f"old-{i}") for i in range(50)]
    during: list[str] = []

    def pause(seconds: float) -> None:
        during.append(_order(store, f"during-{len(during)}"))  # a checkout mid-copy

    lost: list[int] = []
    conn = _conn(store)
    migration.migrate(
        conn,
        "v2",
        mode="offline",
        step=lambda name, f: lost.append(f["rows_lost"]) if name == "switch" else None,
        pause=pause,
    )
    _, missing, _ = store.lookup(before + during)
    assert during
    assert missing == during
    assert lost == [len(during)]
    conn.close()
    store.close()


def test_duplicates_across_tables_are_reported(tmp_path: Path) -> None:
    store = _store(tmp_path)
    order_id = _order(store, "k1")
    conn = _conn(store)
    conn.execute(migration._DDL["v2"])
    row = ("other-id", "k1", json.dumps([{"product_id": "p1", "quantity": 1}]), 1, "c", "r")
    migration.insert(conn, "orders_v2", (*row, "confirmed", 0.0), ignore=False)
    _, _, dups = store.lookup([order_id])
    assert dups == {"k1": sorted([order_id, "other-id"])}
    conn.close()
    store.close()


def test_half_done_migration_is_aborted_when_heading_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    order_id = _order(store, "k1")
    conn = _conn(store)
    conn.execute(migration._DDL["v2"])
    conn.execute("UPDATE schema_state SET target = 'v2', phase = 'switch_reads'")
    second = _order(store, "k2")  # dual-written while reads come from orders_v2
    steps: list[str] = []
    migration.migrate(conn, "v1", mode="online", step=lambda n, f: steps.append(n))
    assert steps == ["abort"]
    assert migration.existing_tables(conn) == ["orders"]
    assert store.lookup([order_id, second])[1] == []
    conn.close()
    store.close()


def test_a_deferred_payment_is_stored_as_payment_pending(tmp_path: Path) -> None:
    store = _store(tmp_path)
    order, created = store.create(
        "key-1", [LineItem("p-1", 1)], 500, "pending", "r-1", "payment_pending"
    )
    assert created
    stored = store.get(order["order_id"])
    assert stored is not None
    assert stored["status"] == "payment_pending"
    confirmed, _ = store.create("key-2", [LineItem("p-1", 1)], 500, "c-2", "r-2")
    assert store.get(confirmed["order_id"])["status"] == "confirmed"  # type: ignore[index]
