"""The contracts between the platform and the services: each writer's output reads back."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import shakeout.contracts
from shakeout.contracts import ServiceSettings, SharedKeyDocument

PLATFORM_SETTINGS = ServiceSettings(
    service="orders",
    version="v2",
    zone="b",
    replica="orders-v2-1",
    secret_file=Path("/state/shared-key.json"),
    data_dir=Path("/state/data"),
    config_file=Path("/state/config.json"),
    urls={
        "gateway": "http://127.0.0.1:8000",
        "catalog": "http://127.0.0.1:8001",
        "orders": "http://127.0.0.1:8002",
        "payments": "http://127.0.0.1:8003",
        "inventory": "http://127.0.0.1:8004",
    },
    key_refresh_s=0.2,
    key_cache_ttl_s=300.0,
    key_refetch_on_unknown=False,
)


def test_settings_written_by_the_platform_are_the_variables_it_always_wrote() -> None:
    assert PLATFORM_SETTINGS.to_env() == {
        "SHAKEOUT_SERVICE": "orders",
        "SHAKEOUT_VERSION": "v2",
        "SHAKEOUT_ZONE": "b",
        "SHAKEOUT_REPLICA": "orders-v2-1",
        "SHAKEOUT_SECRET_FILE": "/state/shared-key.json",
        "SHAKEOUT_DATA_DIR": "/state/data",
        "SHAKEOUT_CONFIG_FILE": "/state/config.json",
        "SHAKEOUT_KEY_REFRESH_S": "0.2",
        "SHAKEOUT_KEY_CACHE_TTL_S": "300.0",
        "SHAKEOUT_KEY_REFETCH_ON_UNKNOWN": "0",
        "GATEWAY_URL": "http://127.0.0.1:8000",
        "CATALOG_URL": "http://127.0.0.1:8001",
        "ORDERS_URL": "http://127.0.0.1:8002",
        "PAYMENTS_URL": "http://127.0.0.1:8003",
        "INVENTORY_URL": "http://127.0.0.1:8004",
    }


def test_settings_round_trip_through_the_environment() -> None:
    assert ServiceSettings.from_env("orders", PLATFORM_SETTINGS.to_env()) == PLATFORM_SETTINGS
    faulty = ServiceSettings.from_env(
        "catalog",
        {
            "SHAKEOUT_SECRET_FILE": "/k.json",
            "SHAKEOUT_ERROR_RATE": "0.25",
            "SHAKEOUT_EXTRA_LATENCY_MS": "120",
            "SHAKEOUT_NOT_READY": "yes",
            "SHAKEOUT_CRASH_ON_START": "1",
            "SHAKEOUT_KEY_REFRESH_S": "0.05",
        },
    )
    assert ServiceSettings.from_env("catalog", faulty.to_env()) == faulty
    plain = ServiceSettings.from_env("catalog", {"SHAKEOUT_SECRET_FILE": "/k.json"})
    assert ServiceSettings.from_env("other", plain.to_env()) == plain


def test_a_hyphenated_service_url_is_written_with_an_underscore() -> None:
    settings = ServiceSettings(
        "web", "v1", "a", "web-0", Path("/k"), urls={"order-history": "http://h:1"}
    )
    assert settings.to_env()["ORDER_HISTORY_URL"] == "http://h:1"
    again = ServiceSettings.from_env("web", settings.to_env(), services=["order-history"])
    assert again == settings


def test_shared_key_document_round_trips_with_its_field_names() -> None:
    doc = SharedKeyDocument("new", "old", rotated_at=1700000000.5, overlap_s=30.0)
    assert json.loads(doc.dumps()) == {
        "current": "new",
        "previous": "old",
        "rotated_at": 1700000000.5,
        "overlap_s": 30.0,
    }
    assert SharedKeyDocument.loads(doc.dumps()) == doc
    assert SharedKeyDocument.loads(doc.dumps().encode()) == doc
    assert doc.previous_until == 1700000030.5
    assert SharedKeyDocument.loads('{"current": "k"}') == SharedKeyDocument("k", None, 0.0, 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "Expecting value"),
        ("[]", "expected a JSON object"),
        ('{"previous": "k"}', "'current' must be a non-empty string"),
        ('{"current": ""}', "'current' must be a non-empty string"),
        ('{"current": "k", "previous": ""}', "'previous' must be a non-empty string or null"),
        ('{"current": "k", "rotated_at": "yesterday"}', "'rotated_at' must be a number"),
        ('{"current": "k", "overlap_s": true}', "'overlap_s' must be a number"),
    ],
)
def test_a_bad_shared_key_document_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SharedKeyDocument.loads(text)


def test_contracts_is_a_leaf_module() -> None:
    tree = ast.parse(Path(shakeout.contracts.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name for name in imported if name and name.startswith("shakeout")} <= {
        "shakeout.errors"
    }
