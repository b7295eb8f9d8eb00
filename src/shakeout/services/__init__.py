"""The reference "shop" the embedded platform runs: five small Starlette services.

Each module exposes an app factory, ``create_app() -> Starlette``, served by uvicorn::

    python -m uvicorn --factory shakeout.services.gateway:create_app --host 127.0.0.1 --port N

``gateway`` is the public edge (``/api/...``); ``catalog``, ``orders``, ``payments`` and
``inventory`` are internal services that require the shared key (``X-Shakeout-Key``). Shared
plumbing (settings, shared key, identity headers, fault knobs) lives in ``_common``.
"""

SERVICE_NAMES: tuple[str, ...] = ("gateway", "catalog", "orders", "payments", "inventory")
