"""What-if: ``trivial.py`` with the per-request savings recommended for ``shakeout.loadworker``.

Not a product profile: ``benchmarks/load_overhead.py --what-if`` runs it beside the real one to
measure what the recommended changes to ``src/shakeout/loadworker`` would buy, without changing
``src/``. Same journey, same shape, same records (byte for byte the same line format); only:

* ``users.py``: one ``random.Random`` per user instead of a new one (seeded from ``os.urandom``)
  per journey; no weighted pick for a single journey; the :class:`Shape` built once per user
  instead of twice per request; the closed model's pacing interval recomputed every 0.5 s
  instead of on every request;
* ``capture.py``: the five ``X-Shakeout-*``/``X-Order-Id`` headers read in one pass over the
  response headers instead of five ``Headers.get`` calls that each raise and catch ``KeyError``
  when the header is absent.
"""

from __future__ import annotations

import random
import time
from typing import Any

import _probe  # noqa: F401  (samples the request count; nothing per request)
import gevent
from locust import events  # noqa: TID251 (runs inside Locust)
from locust.exception import StopUser  # noqa: TID251

from shakeout.loadworker import capture, users
from shakeout.loadworker.shapes import Shape, Steady
from shakeout.loadworker.users import Journey, ShakeoutShape, ShakeoutUser

_WANTED = frozenset(capture._HEADERS)
_NO_EXTRA = "\t" * (len(capture._HEADERS) - 1)


def _extra(headers: Any) -> str:
    if not headers:
        return _NO_EXTRA
    found = {}
    for key, value in headers.items():
        lower = key.lower()
        if lower in _WANTED:
            found[lower] = value
    if not found:
        return _NO_EXTRA
    return "\t".join(capture._clean(found.get(h)) for h in capture._HEADERS)


def _record(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    context: dict[str, Any] | None = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    """``capture._record`` with the one-pass header read."""
    if not capture._state.enabled:
        return
    status = int(getattr(response, "status_code", 0) or 0)
    started = start_time if start_time is not None else 0.0
    due = (context or {}).get("due", started)
    if exception is None:
        error = ""
    elif request_type == "DROP":
        error = "dropped"
    elif status:
        error = f"HTTP {status}"
    else:
        error = type(exception).__name__
    extra = _extra(getattr(response, "headers", None))
    capture._state.batch.append(
        f"{due:.6f}\t{started:.6f}\t{started + response_time / 1000.0:.6f}\t"
        f"{capture._clean(name)}\t{request_type}\t{status}\t{error}\t{extra}\n"
    )


events.request.remove_listener(capture._record)  # type: ignore[no-untyped-call]
events.request.add_listener(_record)  # type: ignore[no-untyped-call]


def root(user: ShakeoutUser, context: dict[str, Any]) -> None:
    """``GET /``."""
    user.client.get("/", name="root", context=context)


class Tuned(ShakeoutUser):
    """``ShakeoutUser`` with a per-user RNG, a precomputed pick and a cached shape."""

    journeys = [(1, root)]  # noqa: RUF012
    _cached_shape: Shape | None = None
    _rng: random.Random | None = None
    _pace = 0.0
    _pace_until = 0.0  # monotonic time when the pacing interval is due for a recomputation

    def _shape(self) -> Shape:
        if self._cached_shape is None:
            self._cached_shape = super()._shape()
        return self._cached_shape

    def wait_time(self) -> float:
        """As ``ShakeoutUser.wait_time``, with the pacing interval kept for 0.5 s."""
        now = time.monotonic()
        if now >= self._pace_until:
            rate = self._shape().rate_rps(users.elapsed_s())
            count = users.closed_users(rate, self.environment.parsed_options)
            self._pace = count / rate if rate > 0 else 1.0
            self._pace_until = now + 0.5
        last = getattr(self, "_last_start", None)
        return self._pace if last is None else max(0.0, self._pace - (now - last))

    def _pick(self, rng: random.Random) -> Journey:
        if len(self.journeys) == 1:
            return self.journeys[0][1]
        return super()._pick(rng)

    def journey(self) -> None:
        """As ``ShakeoutUser.journey``, with one RNG per user."""
        options = self.environment.parsed_options
        if options.shakeout_model == "open":
            self._open_loop(options)
            raise StopUser
        shape = self._shape()
        if users.elapsed_s() >= shape.duration_s or users._run.launched >= self._cap(options):
            gevent.sleep(0.5)
            return
        if self._rng is None:
            self._rng = random.Random()
        self._last_start = time.monotonic()
        users._run.launched += 1
        self._pick(self._rng)(self, {"due": time.time()})


# Locust collects the base class's tasks too: make this override the only task.
Tuned.tasks = [Tuned.journey]


class TunedShape(ShakeoutShape):
    """A steady rate for the run's duration."""

    def build(self, options: Any) -> Steady:
        """The shape from the parsed options."""
        return Steady(options.shakeout_rate, options.shakeout_duration)
