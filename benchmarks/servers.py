"""A tiny HTTP server for the load benchmarks: ``GET /`` answers 200 ``ok``, optionally late.

Run: ``python benchmarks/servers.py --port 8999 --delay-ms 50 [--workers 2]``.

A raw ASGI app (no framework) under uvicorn's fastest settings: httptools parser, uvloop event
loop, no access log, no lifespan, no ``server``/``date`` headers. With ``--delay-ms D`` (D > 0)
each answer waits exactly ``asyncio.sleep(D / 1000)`` first, so a load generator's measured
latency can be checked against a known service time. The event loop's timers are not exact
(uvloop's have millisecond resolution), so with D > 0 the server also times each answer itself,
from the request reaching the app to the response being handed to uvicorn: ``GET /timing``
returns those times' count, p50, p99 and max in milliseconds as JSON and starts afresh (per
process). Any other path or method gets 404.

``--workers N`` runs N uvicorn processes on one listening socket (uvicorn's own supervisor), for
when one process cannot keep up with the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DELAY_ENV = "BENCH_SERVER_DELAY_MS"
_DELAY_S = float(os.environ.get(DELAY_ENV, "0")) / 1000.0
_OK_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
MAX_TIMED = 1_000_000  # answers timed between two /timing calls (bounded memory)
_handled_s: list[float] = []  # with a delay: how long each answer took inside this process


def _timing() -> bytes:
    """Count, p50, p99 and max (ms) of the answers timed since the last call; then reset."""
    times = sorted(_handled_s)
    _handled_s.clear()

    def pct(q: float) -> float | None:
        return times[max(0, math.ceil(q / 100 * len(times)) - 1)] * 1000 if times else None

    summary = {"count": len(times), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100)}
    return json.dumps(summary).encode()


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The whole server: ``GET /`` answers ``ok`` after the configured delay."""
    if scope["type"] != "http":
        return
    if scope["method"] != "GET" or scope["path"] != "/":
        if scope["method"] == "GET" and scope["path"] == "/timing":
            await _answer(send, 200, _timing(), b"application/json")
        else:
            await _answer(send, 404, b"not found", b"text/plain")
        return
    if _DELAY_S > 0:
        arrived = time.perf_counter()
        await asyncio.sleep(_DELAY_S)
        if len(_handled_s) < MAX_TIMED:
            _handled_s.append(time.perf_counter() - arrived)
    await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
    await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark server only listens on loopback")
    if args.delay_ms < 0 or args.workers < 1:
        parser.error("--delay-ms must be >= 0 and --workers >= 1")
    # Workers are fresh interpreters importing "servers:app": they read the delay from here.
    os.environ[DELAY_ENV] = str(args.delay_ms)
    uvicorn.run(
        "servers:app" if args.workers > 1 else _reloaded_app(args.delay_ms),
        host=args.host,
        port=args.port,
        workers=args.workers if args.workers > 1 else None,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        backlog=4096,
        timeout_graceful_shutdown=1,
    )


def _reloaded_app(delay_ms: float) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app with the delay given on the command line (this process read the env too early)."""
    global _DELAY_S  # noqa: PLW0603 (set once, before the server starts)
    _DELAY_S = delay_ms / 1000.0
    return app


if __name__ == "__main__":
    main()
