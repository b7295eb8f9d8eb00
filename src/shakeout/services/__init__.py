"""The reference "shop" the embedded platform runs: five small Starlette services.

Each module exposes an app factory, ``create_app() -> Starlette``, served by uvicorn::

    python -m uvicorn --factory shakeout.services.gateway:create_app --host 127.0.0.1 --port N

``gateway`` is the public edge (``/api/...``); ``catalog``, ``orders``, ``payments`` and
``inventory`` are internal services that require the shared key (``X-Shakeout-Key``). Shared
plumbing lives in private modules, one per concern: ``_settings`` (start-up), ``_keys`` (the
shared key), ``_config`` (live config), ``_middleware`` (identity headers, key gate, fault
knobs, health routes), ``_requests`` (reading requests); the gateway's upstream calls in
``_upstream``. What the platform and the services exchange (environment, shared-key file) is
typed in ``shakeout.contracts``.
"""

from shakeout.contracts import SHOP_SERVICES

SERVICE_NAMES: tuple[str, ...] = SHOP_SERVICES
