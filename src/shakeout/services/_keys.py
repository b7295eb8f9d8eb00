"""The shared key: fetched from the secret store (a file), polled, cached while it is down."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from shakeout.contracts import KEY_REFRESH_S, ServiceSettings, SharedKeyDocument, key_id

log = logging.getLogger("shakeout.services")

REFETCH_MIN_INTERVAL_S = 0.02  # an unknown key re-reads the store at most this often


class _Keys(NamedTuple):
    current: bytes
    previous: bytes | None
    previous_until: float

    @classmethod
    def of(cls, document: SharedKeyDocument) -> _Keys:
        """The keys of a shared-key document, as bytes to compare."""
        return cls(
            current=document.current.encode(),
            previous=document.previous.encode() if document.previous else None,
            previous_until=document.previous_until,
        )


class KeyStore:
    """The shared key, fetched from the secret store (a JSON file standing in for it).

    The store is polled at most every ``check_interval_s`` (on the request path; no watcher
    thread) and re-read when the file's identity, mtime or size change. When the store is
    unreachable (the file is missing or invalid) the last good keys stay in use as cached
    credentials for ``cache_ttl_s`` after the last successful fetch; after that the store fails
    closed (no key: 503). ``cache_ttl_s=0`` means no cache at all; ``None`` caches forever.
    """

    def __init__(
        self,
        path: Path,
        check_interval_s: float = KEY_REFRESH_S,
        cache_ttl_s: float | None = None,
        refetch_on_unknown: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Load the file now; a missing or invalid file leaves the store not loaded.

        ``refetch_on_unknown``: a presented key that is neither current nor previous makes the
        store re-read once (at most every ``REFETCH_MIN_INTERVAL_S``) before it is refused, so
        a caller that picked up a rotation first is not refused by a replica still polling.
        ``clock`` (intervals, cache age) and ``wall_clock`` (the overlap's end, an epoch time
        in the key file) are injectable so tests step time instead of sleeping.
        """
        self.path = path
        self._clock = clock
        self._wall_clock = wall_clock
        self._refetch_on_unknown = refetch_on_unknown
        self._next_refetch = 0.0
        self._interval = check_interval_s
        self._ttl = cache_ttl_s
        self._next_check = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._keys: _Keys | None = None
        self._fetched_at = 0.0
        self._store_down_since: float | None = None
        self.error: str | None = "not loaded yet"
        self.refresh(force=True)

    @property
    def source(self) -> str:
        """Where the keys in use come from: ``store``, ``cache`` (store unreachable) or ``none``."""
        if self._keys is None:
            return "none"
        return "store" if self._store_down_since is None else "cache"

    def status(self) -> dict[str, Any]:
        """Non-secret view: key id, source, age of the cache, last error."""
        keys = self._keys
        now = self._clock()
        return {
            "key_id": None if keys is None else key_id(keys.current),
            "previous_key_id": None
            if keys is None or keys.previous is None
            else key_id(keys.previous),
            "source": self.source,
            "cached_for_s": None
            if self._store_down_since is None
            else round(now - self._store_down_since, 3),
            "cache_ttl_s": self._ttl,
            "error": self.error,
        }

    @property
    def loaded(self) -> bool:
        """Whether a valid key file has been read."""
        return self._keys is not None

    @property
    def current(self) -> str | None:
        """The current key as last loaded (what callers send), or None if never loaded."""
        return None if self._keys is None else self._keys.current.decode()

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; cheap enough to call on every request."""
        now = self._clock()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"secret store unreachable: cannot stat {self.path}: {exc.strerror}")
            return
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature != self._signature:
            try:
                keys = _Keys.of(SharedKeyDocument.loads(self.path.read_bytes()))
            except (OSError, ValueError) as exc:
                self._fail(f"invalid key file {self.path}: {exc}")
                return
            self._signature = signature
            self._keys = keys
        if self._store_down_since is not None:
            log.warning("secret store reachable again; cached credentials replaced")
        self._fetched_at = now
        self._store_down_since = None
        self.error = None

    def _fail(self, message: str) -> None:
        now = self._clock()
        if self._store_down_since is None:
            self._store_down_since = now
        if self._keys is not None and self._ttl is not None and now - self._fetched_at >= self._ttl:
            # The cache is spent: fail closed rather than trust a key the store may have
            # revoked since. Forget the file signature so the next good fetch re-reads it.
            self._keys = None
            self._signature = None
            message = f"{message}; cached key expired (cache TTL {self._ttl:g} s)"
        elif self._keys is not None:
            message = f"{message}; serving with cached key"
        if message != self.error:
            log.warning("%s", message)
        self.error = message

    def accepts(self, presented: bytes | None) -> bool:
        """Whether ``presented`` is the current key, or the previous one within the overlap
        (re-reading the store once first when configured to, see ``refetch_on_unknown``)."""
        if self._known(presented):
            return True
        now = self._clock()
        if presented is None or not self._refetch_on_unknown or now < self._next_refetch:
            return False
        self._next_refetch = now + REFETCH_MIN_INTERVAL_S
        self.refresh(force=True)
        return self._known(presented)

    def _known(self, presented: bytes | None) -> bool:
        keys = self._keys
        if presented is None or keys is None:
            return False
        if hmac.compare_digest(presented, keys.current):
            return True
        return (
            keys.previous is not None
            and hmac.compare_digest(presented, keys.previous)
            and self._wall_clock() < keys.previous_until
        )


def key_store(settings: ServiceSettings) -> KeyStore:
    """The service's key store, polling and caching as the platform configured it."""
    return KeyStore(
        settings.secret_file,
        check_interval_s=settings.key_refresh_s,
        cache_ttl_s=settings.key_cache_ttl_s,
        refetch_on_unknown=settings.key_refetch_on_unknown,
    )
