"""Record every request of a Locust run for ShakeOut (imported by the load profiles).

Each request becomes one tab-separated line, its columns named in :mod:`shakeout.recordformat`::

    due started_at ended_at name method status error service version zone replica order_id

``due`` is when the request was scheduled (open model) or, in the closed model, when it
started; times are Unix seconds with microsecond resolution, and ``ended - started`` is
Locust's own unrounded ``response_time``. ``status`` is 0 when no response arrived; ``error`` is
empty on success, ``HTTP 502``-like for an error status, the exception's class otherwise, and
``dropped`` for a request the open model could not launch. The last five fields come from the
``X-Shakeout-*`` and ``X-Order-Id`` response headers.

Workers batch their lines every 0.2 s and send them to the master with Locust's own messaging
(``send_message``), so workers on other machines stream too; the master (or the single local
runner, where Locust emulates the messaging) appends them to the file named by
``--shakeout-records`` / ``SHAKEOUT_RECORDS``. Without it this module records nothing, so the
profiles also run under plain Locust.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
from typing import Any, TextIO

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from shakeout.recordformat import IDENTITY_HEADERS, format_line

MESSAGE = "shakeout_records"
FLUSH_PERIOD_S = 0.2
_HEADERS = tuple(IDENTITY_HEADERS)


class _State:
    """Records waiting to be sent, and whether this process records at all."""

    batch: list[str] = []  # noqa: RUF012
    enabled = False


_state = _State()


def _clean(value: object) -> str:
    return "" if value is None else str(value).replace("\t", " ").replace("\n", " ")


_WANTED = frozenset(_HEADERS)
_names: dict[str, str] = {}  # request names, cleaned once
_NO_EXTRA = "\t" * (len(_HEADERS) - 1)


def _extra(headers: Any) -> str:
    """The identity and order headers in one pass (a ``get`` per missing header costs an
    exception inside geventhttpclient's header class)."""
    if not headers:
        return _NO_EXTRA
    found = {}
    for key, value in headers.items():
        lower = key.lower()
        if lower in _WANTED:
            found[lower] = value
    if not found:
        return _NO_EXTRA
    return "\t".join(_clean(found.get(h)) for h in _HEADERS)


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
    if not _state.enabled:
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
    clean = _names.get(name)
    if clean is None:
        clean = _names[name] = _clean(name)
    ended = started + response_time / 1000.0
    _state.batch.append(format_line(due, started, ended, clean, request_type, status, error, extra))


def _flush(environment: Environment) -> None:
    if _state.batch and environment.runner is not None:
        lines, _state.batch = _state.batch, []
        environment.runner.send_message(MESSAGE, "".join(lines))


def _flusher(environment: Environment) -> None:
    while True:
        gevent.sleep(FLUSH_PERIOD_S)
        _flush(environment)


class _Sink:
    """The master's (or local runner's) file of records."""

    def __init__(self, path: str) -> None:
        self.out: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed on quit)

    def write(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.out.write(msg.data)
        self.out.flush()


def _die_with_parent() -> None:
    """Forked workers (``--processes``) end with their master, as the master ends with us."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))


def _options(parser: Any) -> None:
    group = parser.add_argument_group("ShakeOut")
    group.add_argument(
        "--shakeout-records",
        env_var="SHAKEOUT_RECORDS",
        default="",
        help="file the master (or local runner) appends every request record to",
    )


def _init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    path = getattr(options, "shakeout_records", "") if options is not None else ""
    runner = environment.runner
    if not path or runner is None:
        return
    if isinstance(runner, WorkerRunner):
        _die_with_parent()
    if not isinstance(runner, MasterRunner):
        _state.enabled = True
        gevent.spawn(_flusher, environment)
        events.test_stopping.add_listener(lambda **_: _flush(environment))
        events.quitting.add_listener(lambda **_: _flush(environment))
    if not isinstance(runner, WorkerRunner):
        sink = _Sink(path)
        runner.register_message(MESSAGE, sink.write)
        events.quitting.add_listener(lambda **_: sink.out.close())


events.init_command_line_parser.add_listener(_options)
events.init.add_listener(_init)
events.request.add_listener(_record)
