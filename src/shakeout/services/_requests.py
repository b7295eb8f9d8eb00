"""Reading shop requests: JSON bodies, idempotency keys, cart lines; ``ApiError`` for bad ones."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from starlette.requests import Request

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_BODY_BYTES = 2_000_000
MAX_ITEMS = 100
MAX_QUANTITY = 1000
MAX_LOOKUP_IDS = 10_000


class ApiError(Exception):
    """Answer ``{"error": message, **extra}`` with ``status``; 400s name the field at fault."""

    def __init__(self, message: str, status: int = 400, **extra: str) -> None:
        """Record the message, the status to answer with and extra string fields."""
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON; ApiError if absent, too large or invalid."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ApiError(f"request body larger than {MAX_BODY_BYTES} bytes", status=413)
    body = await request.body()
    if not body:
        raise ApiError("request body must be JSON")
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError("request body is not valid JSON") from None


def require_idempotency_key(request: Request) -> str:
    """The Idempotency-Key header; ApiError if missing, blank or too long."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key:
        raise ApiError(f"{IDEMPOTENCY_HEADER} header is required")
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise ApiError(
            f"{IDEMPOTENCY_HEADER} header must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"
        )
    return key


class LineItem(NamedTuple):
    """One cart line: a product and how many of it."""

    product_id: str
    quantity: int


def _body_field(body: Any, field: str) -> Any:
    if not isinstance(body, dict):
        raise ApiError("request body must be a JSON object")
    if field not in body:
        raise ApiError(f"{field} is required")
    return body[field]


def parse_items(body: Any) -> list[LineItem]:
    """Validate ``{"items": [{"product_id": str, "quantity": int}, ...]}``."""
    items = _body_field(body, "items")
    if not isinstance(items, list) or not items:
        raise ApiError("items must be a non-empty list")
    if len(items) > MAX_ITEMS:
        raise ApiError(f"items must have at most {MAX_ITEMS} entries")
    parsed: list[LineItem] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(f"items[{i}] must be an object")
        product_id = item.get("product_id")
        if not isinstance(product_id, str) or not 0 < len(product_id) <= 64:
            raise ApiError(f"items[{i}].product_id must be a non-empty string")
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise ApiError(f"items[{i}].quantity must be an integer")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ApiError(f"items[{i}].quantity must be from 1 to {MAX_QUANTITY}")
        parsed.append(LineItem(product_id, quantity))
    return parsed


def parse_int_field(body: Any, field: str, low: int = 0) -> int:
    """An integer field of a JSON object body, at least ``low``."""
    value = _body_field(body, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ApiError(f"{field} must be an integer >= {low}")
    return value


def parse_str_field(body: Any, field: str, max_chars: int = 200) -> str:
    """A non-empty string field of a JSON object body."""
    value = _body_field(body, field)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise ApiError(f"{field} must be a non-empty string of at most {max_chars} characters")
    return value


def parse_ids(body: Any) -> list[str]:
    """Validate ``{"ids": [str, ...]}`` (at most MAX_LOOKUP_IDS); duplicates are dropped."""
    ids = _body_field(body, "ids")
    if not isinstance(ids, list):
        raise ApiError("ids must be a list of strings")
    if len(ids) > MAX_LOOKUP_IDS:
        raise ApiError(f"ids must have at most {MAX_LOOKUP_IDS} entries")
    for i, value in enumerate(ids):
        if not isinstance(value, str):
            raise ApiError(f"ids[{i}] must be a string")
    return list(dict.fromkeys(ids))


class BoundedDict(dict[str, Any]):
    """An insertion-ordered dict that forgets its oldest entries beyond ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        """Create an empty dict holding at most ``max_entries`` keys."""
        super().__init__()
        self.max_entries = max_entries

    def __setitem__(self, key: str, value: Any) -> None:
        """Insert, then evict the oldest entries over the bound."""
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            del self[next(iter(self))]
