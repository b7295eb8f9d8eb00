"""Settings, shared-key store and helpers shared by the services."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from shakeout.contracts import ServiceSettings
from shakeout.services._keys import KeyStore
from shakeout.services._requests import BoundedDict
from shakeout.services._settings import load_settings

BASE = {"SHAKEOUT_SECRET_FILE": "/run/key.json"}


def test_settings_defaults_and_identity() -> None:
    s = ServiceSettings.from_env("catalog", BASE)
    assert (s.service, s.version, s.zone, s.replica) == ("catalog", "v1", "a", "catalog-0")
    assert s.secret_file == Path("/run/key.json")
    assert s.data_dir is None
    assert (s.error_rate, s.extra_latency_ms, s.crash_on_start, s.not_ready) == (0, 0, False, False)
    assert dict(s.identity_headers()) == {
        b"x-shakeout-service": b"catalog",
        b"x-shakeout-version": b"v1",
        b"x-shakeout-zone": b"a",
        b"x-shakeout-replica": b"catalog-0",
    }


def test_settings_read_everything() -> None:
    s = ServiceSettings.from_env(
        "orders",
        {
            **BASE,
            "SHAKEOUT_SERVICE": "orders",
            "SHAKEOUT_VERSION": "v2",
            "SHAKEOUT_ZONE": "b",
            "SHAKEOUT_REPLICA": "orders-3",
            "SHAKEOUT_DATA_DIR": "/var/shop",
            "CATALOG_URL": "http://127.0.0.1:9001/",
            "SHAKEOUT_ERROR_RATE": "0.2",
            "SHAKEOUT_EXTRA_LATENCY_MS": "200",
            "SHAKEOUT_NOT_READY": "1",
            "SHAKEOUT_CRASH_ON_START": "true",
        },
    )
    assert (s.version, s.zone, s.replica) == ("v2", "b", "orders-3")
    assert s.data_dir == Path("/var/shop")
    assert s.catalog_url == "http://127.0.0.1:9001"
    assert s.orders_url is None
    assert (s.error_rate, s.extra_latency_ms, s.not_ready, s.crash_on_start) == (
        0.2,
        200.0,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHAKEOUT_ERROR_RATE", "1.5"),
        ("SHAKEOUT_ERROR_RATE", "lots"),
        ("SHAKEOUT_EXTRA_LATENCY_MS", "-1"),
        ("SHAKEOUT_NOT_READY", "maybe"),
    ],
)
def test_settings_reject_bad_values_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        ServiceSettings.from_env("catalog", {**BASE, name: value})


def test_settings_require_the_secret_file() -> None:
    with pytest.raises(ValueError, match="SHAKEOUT_SECRET_FILE"):
        ServiceSettings.from_env("catalog", {})


def test_crash_on_start_exits_1_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHAKEOUT_SECRET_FILE", "/nowhere.json")
    monkeypatch.setenv("SHAKEOUT_CRASH_ON_START", "1")
    monkeypatch.setenv("SHAKEOUT_REPLICA", "catalog-7")
    with pytest.raises(SystemExit) as excinfo:
        load_settings("catalog")
    assert excinfo.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "catalog-7" in err
    assert "SHAKEOUT_CRASH_ON_START" in err


def _write(path: Path, **data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def test_key_store_accepts_current_and_previous_within_overlap(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    _write(path, current="new", previous="old", rotated_at=time.time(), overlap_s=60)
    keys = KeyStore(path)
    assert keys.loaded
    assert keys.current == "new"
    assert keys.accepts(b"new")
    assert keys.accepts(b"old")
    assert not keys.accepts(b"other")
    assert not keys.accepts(None)


def test_key_store_refuses_previous_after_overlap(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    _write(path, current="new", previous="old", rotated_at=time.time() - 61, overlap_s=60)
    keys = KeyStore(path)
    assert keys.accepts(b"new")
    assert not keys.accepts(b"old")


def test_key_store_missing_then_created(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    keys = KeyStore(path)
    assert not keys.loaded
    assert keys.current is None
    assert keys.error is not None
    assert str(path) in keys.error
    assert not keys.accepts(b"anything")
    _write(path, current="k1", previous=None, rotated_at=0, overlap_s=0)
    keys.refresh()  # within the check interval: not even stat'ed
    assert not keys.loaded
    keys.refresh(force=True)
    assert keys.loaded
    assert keys.error is None
    assert keys.accepts(b"k1")


def test_key_store_reloads_on_change_at_most_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    _write(path, current="k1", previous=None, rotated_at=0, overlap_s=0)
    now = [100.0]
    keys = KeyStore(path, check_interval_s=0.05, clock=lambda: now[0])
    _write(path, current="k2", previous="k1", rotated_at=time.time(), overlap_s=10)
    keys.refresh()
    assert keys.current == "k1"
    now[0] += 0.049
    keys.refresh()
    assert keys.current == "k1"  # still within the interval: not even stat'ed
    now[0] += 0.002
    keys.refresh()
    assert keys.current == "k2"
    assert keys.accepts(b"k1")


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"current": ""}', '{"current": "k", "rotated_at": "yesterday"}'],
)
def test_key_store_rejects_invalid_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    keys = KeyStore(path)
    assert not keys.loaded
    assert keys.error is not None
    assert "invalid key file" in keys.error


def test_key_store_keeps_last_good_keys_when_the_file_breaks(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    _write(path, current="k1", previous=None, rotated_at=0, overlap_s=0)
    keys = KeyStore(path)
    path.write_text("{broken")
    keys.refresh(force=True)
    assert keys.loaded
    assert keys.accepts(b"k1")
    assert keys.error is not None


def test_bounded_dict_forgets_the_oldest() -> None:
    d = BoundedDict(2)
    d["a"], d["b"], d["c"] = 1, 2, 3
    assert list(d) == ["b", "c"]
