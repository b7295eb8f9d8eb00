"""ShakeOut's Locust users: open-model and closed-model load from one journey mix.

A profile subclasses :class:`ShakeoutUser` with weighted ``journeys`` and :class:`ShakeoutShape`
with a ``build`` method returning a :class:`~shakeout.loadworker.shapes.Shape`. Options come
from one place, Locust's own parser (command line, ``SHAKEOUT_*`` environment, config file):

* ``--shakeout-model open`` (default): each worker process runs one scheduler user that launches
  journeys at the shape's rate (``--shakeout-arrivals constant`` or ``poisson``) however slow the
  responses are. A request's latency counts from when it was due (coordinated omission
  corrected, as wrk2 does). A request that cannot be launched because ``--shakeout-max-in-flight``
  requests are already outstanding is recorded as dropped, never hidden.
  The scheduler sleeps with gevent until ``SPIN_MARGIN_S`` before each due time and spawns the
  request's greenlet, which yields (``gevent.sleep(0)``) until it is due and sends: gevent's
  timers (libev over epoll) wake up to ~1.5 ms late, and that lateness would count as latency.
* ``--shakeout-model closed``: Locust's usual model, labelled as such: ``rate / user-rps`` users,
  each pacing itself to its share of the rate; a slow response delays that user's next request,
  so latency under a stall is under-reported (the omission the open model corrects). Users do
  not fire in lockstep: each starts at a random offset within one pacing interval and keeps its
  own phase (a request that outlasts its interval is followed by the next slot of that user's
  own grid, not by an immediate one), so users stay spread after a stall too.

Under plain Locust (``_plain_locust``, on ``init``, before any user starts): ``-t/--run-time``
is the run length when ``--shakeout-duration`` is not given (the shorter when both are), and the
start is logged with where the length came from; ``-u/--users`` and ``-r/--spawn-rate`` are
refused in both models (exit code 2, one line naming ``--shakeout-rate``); a locustfile with
ShakeOut users and no shape (``_shop.py``) is refused with the profiles that import it.
``--shakeout-help`` prints Locust's help with these options, which Locust's own ``--help``
cannot show: it prints before the locustfile, where they are added, is imported.
"""

from __future__ import annotations

import gc
import inspect
import logging
import math
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import gevent
import gevent.pool
from locust import LoadTestShape, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import WorkerRunner

from shakeout.loadworker import capture  # noqa: F401  (records every request)
from shakeout.loadworker.shapes import OPTIONS, Shape, settle_run_length

Journey = Callable[["ShakeoutUser", dict[str, Any]], None]
_log = logging.getLogger(__name__)
GRACE_S = 3.0  # in-flight requests may finish this long after the shape's end
SPIN_MARGIN_S = 0.0015
"""Open model: wake up this long before a request is due; it then yields until it is due."""
SPIN_SHARE = 0.3
"""...but spin at most about this share of the time: above 200 rps the margin shrinks to
``SPIN_SHARE / rate``, bounding the spin's CPU (+12% of a core at 200 rps), at the price of some
lateness again (measured at 600 rps: median 0.4 ms, against 0.8 ms without the spin)."""
MIN_WAIT_S = 1e-4  # closed model: a shorter wait is no wait (a timer costs more than it buys)


class _Run:
    """This process's run: when the test started and how many requests were launched."""

    started_at: float | None = None
    launched = 0


_run = _Run()


class DroppedRequest(Exception):
    """The open model could not launch a request: too many already in flight."""


HELP = (
    "Options of the ShakeOut profiles (docs/load.md), also settable as the environment variables "
    "named. Locust's -t/--run-time is the run length when --shakeout-duration is not given (the "
    "shorter when both are); -u/--users and -r/--spawn-rate are refused: --shakeout-rate sets the "
    "load. Locust's own --help prints before it imports the locustfile, so it cannot list this "
    "section: --shakeout-help does."
)


def _options(parser: Any) -> None:
    group = parser.add_argument_group("ShakeOut load", HELP)
    group.add_argument(
        "--shakeout-help", action="help", help="show this help, ShakeOut's options included"
    )
    for option in OPTIONS:
        extra = {"choices": list(option.choices)} if option.choices else {}
        group.add_argument(
            option.flag,
            env_var=option.env,
            default=option.default,
            type=option.kind,
            metavar=option.metavar,
            help=option.help,
            **extra,
        )


def _refuse(message: str) -> NoReturn:
    """End Locust before anything starts, with a one-line reason (and argparse's exit code)."""
    sys.stderr.write(f"locust: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _journeys_module_message(locustfile: str, user_classes: list[type]) -> str:
    """Why a locustfile with ShakeOut users and no ShakeoutShape does not run, and what does."""
    path = Path(inspect.getfile(user_classes[0]))
    stem = re.escape(path.stem)
    imports = re.compile(rf"^\s*(from\s+{stem}\s+import|import\s+{stem}\b)", re.MULTILINE)
    profiles = sorted(
        p.stem
        for p in path.parent.glob("*.py")
        if p != path and not p.stem.startswith("_") and imports.search(p.read_text("utf-8"))
    )
    names = ", ".join(sorted(c.__name__ for c in user_classes))
    where = path.parent.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path.parent
    run = f"; run one of them: locust -f {where}/<profile>.py" if profiles else ""
    return (
        f"{locustfile} is a journeys module (ShakeOut users: {names}), not a load profile: it "
        f"has no load shape (ShakeoutShape subclass). Profiles that use it: "
        f"{', '.join(profiles) or 'none in ' + str(where)}{run}"
    )


def _common_options_message(options: Any, locustfile: str) -> str | None:
    """Why Locust's -u/-r do not apply to a ShakeOut profile, and what to use instead."""
    given = [
        flag
        for flag, value in (
            ("-u/--users", options.num_users),
            ("-r/--spawn-rate", options.spawn_rate),
        )
        if value is not None
    ]
    if not given:
        return None
    flags = f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to"
    rate = options.shakeout_rate
    if options.shakeout_model == "open":
        return (
            f"{locustfile}: {flags} ShakeOut's open model, which launches requests on schedule "
            f"at --shakeout-rate ({rate:g} rps here), with no users to count or spawn; "
            "use --shakeout-rate instead"
        )
    return (
        f"{locustfile}: {flags} ShakeOut's closed model, whose users follow the shape's rate "
        f"(--shakeout-rate {rate:g} / --shakeout-user-rps {options.shakeout_user_rps:g} = "
        f"{closed_users(rate, options)} users at the base rate, spawned within a second); "
        "use --shakeout-rate (and --shakeout-user-rps) instead"
    )


def _plain_locust(environment: Any, **_: Any) -> None:
    """Checks and settles what plain Locust's options mean for a ShakeOut profile (``init``:
    after parsing, before any user starts). Workers take their options from the master."""
    options = environment.parsed_options
    if options is None or not hasattr(options, "shakeout_model"):
        return
    locustfile = getattr(options, "locustfile", None) or environment.locustfile
    shape = environment.shape_class
    ours = [c for c in environment.user_classes if issubclass(c, ShakeoutUser)]
    if not isinstance(shape, ShakeoutShape):
        if ours:
            _refuse(_journeys_module_message(locustfile, ours))
        return
    if isinstance(environment.runner, WorkerRunner):
        settle_run_length(options)  # replaced by the master's when it spawns users here
        return
    message = _common_options_message(options, locustfile)
    if message:
        _refuse(message)
    source = settle_run_length(options)
    # Locust's web UI hides its users/spawn-rate/run-time fields for such a shape (the class
    # says True only so that Locust does not warn, before this, that -t is ignored); this
    # instance's own attribute shadows the class's.
    instance: Any = shape
    instance.use_common_options = False
    model = (
        f"open model ({options.shakeout_arrivals} arrivals)"
        if options.shakeout_model == "open"
        else "closed model (latency under-reports stalls)"
    )
    _log.info(
        "ShakeOut profile %s: %s, %s; run length %g s from %s, then up to %g s for requests "
        "in flight",
        locustfile,
        shape.build(options),
        model,
        options.shakeout_duration,
        source,
        GRACE_S,
    )


def _test_start(**_: Any) -> None:
    # Everything allocated so far (Locust, gevent, the profile) lives as long as the process:
    # out of the collector's sight, a full collection during the run takes ~10 ms, not ~50 ms
    # (measured at 200 rps with 400 requests in flight), and every response waiting for it is
    # that much later.
    gc.collect()
    gc.freeze()
    _run.started_at = time.time()


events.init_command_line_parser.add_listener(_options)
events.init.add_listener(_plain_locust)
events.test_start.add_listener(_test_start)


def elapsed_s() -> float:
    """Seconds since this process's test started."""
    return time.time() - _run.started_at if _run.started_at is not None else 0.0


class ShakeoutShape(LoadTestShape):
    """Turns a profile's :class:`Shape` into Locust user counts for the chosen model."""

    abstract = True
    use_common_options = True  # -t is read, -u/-r refused, by ShakeOut itself (_plain_locust)

    def build(self, options: Any) -> Shape:
        """The profile's shape from the parsed options."""
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        """Users wanted now; None once the shape (plus a grace for in-flight work) is over."""
        assert self.runner is not None
        options: Any = self.runner.environment.parsed_options
        if options.shakeout_duration is None:
            settle_run_length(options)
        shape = self.build(options)
        t = self.get_run_time()
        if t >= shape.duration_s + GRACE_S:
            return None
        workers = max(1, options.shakeout_workers)
        if options.shakeout_model == "open":
            return workers, float(workers)
        users = closed_users(shape.rate_rps(min(t, shape.duration_s - 1e-9)), options)
        return max(users, 1), float(max(users, 1))


def closed_users(rate: float, options: Any) -> int:
    """Closed model: how many users carry ``rate``, each at most ``--shakeout-user-rps``."""
    return max(1, math.ceil(rate / options.shakeout_user_rps)) if rate > 0 else 0


class ShakeoutUser(FastHttpUser):
    """Base user: runs the weighted ``journeys`` in the open or the closed model."""

    abstract = True
    journeys: ClassVar[list[tuple[int, Journey]]] = []
    concurrency = 2000  # the open model shares one user's connection pool among its greenlets
    network_timeout = 30.0
    connection_timeout = 5.0

    # Per-request costs matter here (the driver must stay within 10% of plain Locust): the
    # shape, the random generator and the weighted pick are built once per user, and the
    # closed model's pacing is recomputed at most every 0.5 s.
    _cached_shape: Shape | None = None
    _rng: random.Random | None = None
    _choices: tuple[list[Journey], list[int]] | None = None
    _pace = 1.0
    _pace_until = 0.0
    _slot: float | None = None  # closed model: this user's next start (monotonic clock)
    _cap_n: int | None = None

    def _shape(self) -> Shape:
        if self._cached_shape is None:
            shape_class = self.environment.shape_class
            if not isinstance(shape_class, ShakeoutShape):
                raise RuntimeError("a ShakeOut profile needs a ShakeoutShape subclass")
            options = self.environment.parsed_options
            if options.shakeout_duration is None:
                settle_run_length(options)
            self._cached_shape = shape_class.build(options)
        return self._cached_shape

    def _random(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random()
        return self._rng

    def _pick(self, rng: random.Random) -> Journey:
        if len(self.journeys) == 1:
            return self.journeys[0][1]
        if self._choices is None:
            self._choices = ([j for _, j in self.journeys], [w for w, _ in self.journeys])
        journeys, weights = self._choices
        return rng.choices(journeys, weights)[0]

    def _pacing(self, now: float) -> float:
        """Closed model: this user's pacing interval (recomputed at most every 0.5 s)."""
        if now >= self._pace_until:
            rate = self._shape().rate_rps(elapsed_s())
            users = closed_users(rate, self.environment.parsed_options)
            self._pace = users / rate if rate > 0 else 1.0
            self._pace_until = now + 0.5
        return self._pace

    def wait_time(self) -> float:
        """Closed model pacing: each user keeps its share of the shape's current rate, on its
        own phase: the next slot is the last one plus the pacing interval or, when the last
        request outlasted it, the first slot of the same grid that is still ahead."""
        now = time.monotonic()
        pace = self._pacing(now)
        slot = self._slot
        if slot is None:
            return 0.0  # the first journey waits for its random offset itself
        slot += pace
        if slot < now:
            slot += math.ceil((now - slot) / pace) * pace
        self._slot = slot
        wait = slot - now
        return wait if wait >= MIN_WAIT_S else 0.0

    @task
    def journey(self) -> None:
        """One journey (closed model) or the whole arrival schedule (open model)."""
        options = self.environment.parsed_options
        if options.shakeout_model == "open":
            self._open_loop(options)
            raise StopUser
        if self._cap_n is None:
            self._cap_n = self._cap(options)
        if _run.launched >= self._cap_n or elapsed_s() >= self._shape().duration_s:
            gevent.sleep(0.5)
            return
        rng = self._random()
        if self._slot is None:
            # Start at a random offset within one pacing interval, so that users spawned
            # together do not fire together.
            now = time.monotonic()
            offset = rng.random() * self._pacing(now)
            self._slot = now + offset
            if offset >= MIN_WAIT_S:
                gevent.sleep(offset)
        _run.launched += 1
        self._pick(rng)(self, {"due": time.time()})

    @staticmethod
    def _cap(options: Any) -> int:
        return int(options.shakeout_max_requests // max(1, options.shakeout_workers))

    def _launch(self, journey: Journey, due: float) -> None:
        # Spawned up to SPIN_MARGIN_S early: yield until due, then send at once (a greenlet
        # spawned at the due time itself would start ~0.1 ms later).
        while time.time() < due:
            gevent.sleep(0)
        journey(self, {"due": due})

    def _open_loop(self, options: Any) -> None:
        shape = self._shape()
        share = 1.0 / max(1, options.shakeout_workers)
        poisson = options.shakeout_arrivals == "poisson"
        pool = gevent.pool.Pool(options.shakeout_max_in_flight)
        rng = self._random()
        cap = self._cap(options)
        start = time.time() - elapsed_s()
        due = time.time()
        while _run.launched < cap:
            t = due - start
            if t >= shape.duration_s:
                break
            rate = shape.rate_rps(t) * share
            if rate <= 0:
                due += 0.05
                continue
            # Sleep until shortly before the due time (see SPIN_MARGIN_S); the request's
            # greenlet yields until it is due, other greenlets (responses) running meanwhile.
            delay = due - time.time() - min(SPIN_MARGIN_S, SPIN_SHARE / rate)
            if delay > 0:
                gevent.sleep(delay)
            journey = self._pick(rng)
            _run.launched += 1
            if pool.full():
                self.environment.events.request.fire(
                    request_type="DROP",
                    name=getattr(journey, "__name__", "journey"),
                    response_time=0.0,
                    response_length=0,
                    response=None,
                    context={"due": due},
                    exception=DroppedRequest("max in flight reached"),
                    start_time=due,
                )
            else:
                pool.spawn(self._launch, journey, due)
            due += rng.expovariate(rate) if poisson else 1.0 / rate
        pool.join(timeout=GRACE_S)
