"""A ground-truth HTTP server: ``GET /`` answered exactly D ms after it arrived, stallable, and a
record of what it did, so that a load generator's measurements can be checked against it.

Run: ``python benchmarks/ground_truth.py --port 8999 --delay-ms 20``.

What it does, precisely:

* **Arrival** of a request is the kernel's receive timestamp of the packet that completed its
  head (``SO_TIMESTAMPNS``, wall clock), not when a thread got round to reading it: a server
  thread that wakes late on a busy machine does not move the deadline.
* **Service**: ``GET /`` (any query string) is answered ``200 ok`` when D ms of *unstalled* time
  have passed since its arrival. One answering thread keeps every pending answer in a heap by
  due time; it waits on a condition until 0.2 ms before the earliest (Linux timer slack set to
  1 us), then spins to it and sends; **answered** is the wall-clock time just before the
  response is handed to the kernel (one ``send``; on loopback the client's socket has it when
  that returns). Answers due at the same instant (after a stall) leave one after the other,
  each recorded when it actually left.
  Why not ``asyncio.sleep``: uvloop's timers have millisecond resolution and overshoot by up to
  ~1 ms (``benchmarks/servers.py`` measured p99 50.95 ms for 50 ms).
* **Stall**: ``POST /stall?s=S`` (optionally ``&at=T``, a Unix time; default now) stops the
  server's clock for ``[T, T+S)``: nothing is answered during it, and a request needs D ms of
  service outside stalls. So a request that arrives during the stall is answered at ``T+S+D``, one
  that had ``r`` ms of its D left when the stall began is answered at ``T+S+r``; it is what a
  frozen (SIGSTOP) process does with requests that need D of work. Connections are still
  accepted and requests still read (and timestamped) during a stall. The answer is
  ``{"start": T, "end": T+S}``. Stalls may overlap; they are merged.
* **Control paths** are answered at once and never stall: ``GET /healthz`` and ``GET /readyz``
  (probes), ``POST /stall``, ``GET /truth``, ``POST /reset[?delay_ms=D]``. Anything else gets
  404.
* **The record**: ``GET /truth`` returns JSON ``{"delay_ms", "stalls": [[start, end], ...],
  "requests": [[arrived, read, answered, query], ...], "truncated": n}`` for every ``GET /`` since
  start or the last ``POST /reset`` (which clears requests and stalls, and with ``delay_ms``
  sets a new D for the requests that arrive after it), in answer order; ``read``
  is when the server had read the head (``read - arrived`` is the server's own wake-up lag,
  already absorbed in the deadline). All times are Unix seconds. ``query`` is the request's
  query string, so that clients sharing the server can tag their requests (``/?c=ref``).
  At most ``--max-records`` are kept between resets (``truncated`` counts the others).

HTTP/1.1 with keep-alive (the default; ``Connection: close`` and HTTP/1.0 close after the
answer), ``TCP_NODELAY``. One thread reads every connection (epoll) and answers the control
paths; the answering thread answers ``GET /``. A connection's next request is parsed only once
its previous one is answered, so pipelined requests are answered in order (the arrival of one
is the receive time of the newest data read before it was parsed: exact when it came with the
previous request or alone). Request bodies need a ``Content-Length`` (chunked bodies get 411).
It listens on loopback only and ends on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import heapq
import itertools
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

SO_TIMESTAMPNS = 35  # Linux: SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) on 64-bit platforms
_TIMESPEC = struct.Struct("@ll")
_ANC = socket.CMSG_SPACE(_TIMESPEC.size)
PR_SET_TIMERSLACK = 29
SPIN_S = 0.0002  # wait on the condition until this long before an answer is due, then spin
MAX_HEAD = 16384
_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
_OK_CLOSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
    b"connection: close\r\n\r\nok"
)


def _fine_timer_slack() -> None:
    """Ask Linux to wake this thread (and threads it starts) within 1 us of a timeout."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


class Conn:
    """One client connection: what was read and not yet parsed, and whether an answer is due."""

    __slots__ = ("buffer", "busy", "closed", "sock", "stamp")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.stamp = 0.0  # kernel receive time of the last data read
        self.busy = False  # a GET / of this connection awaits its answer
        self.closed = False


class Pending:
    """A ``GET /`` waiting for its answer."""

    __slots__ = ("arrived", "close", "conn", "query", "read")

    def __init__(self, conn: Conn, arrived: float, read: float, query: str, close: bool):
        self.conn = conn
        self.arrived = arrived
        self.read = read
        self.query = query
        self.close = close


class Truth:
    """The server's clock (delay and stalls), its pending answers, and its record."""

    def __init__(
        self, delay_s: float, max_records: int, wake_reader: Callable[[Conn], None]
    ) -> None:
        self.delay_s = delay_s
        self.max_records = max_records
        self.stalls: list[tuple[float, float]] = []  # merged, sorted by start
        self.records: list[tuple[float, float, float, str]] = []
        self.truncated = 0
        self.changed = threading.Condition()
        self._heap: list[tuple[float, int, Pending]] = []
        self._seq = itertools.count()
        self._wake_reader = wake_reader

    def finish(self, arrived: float) -> float:
        """When a request that arrived at ``arrived`` has had D of service outside stalls."""
        t, need = arrived, self.delay_s
        for start, end in self.stalls:
            if end <= t:
                continue
            if start >= t + need:
                break
            if start > t:
                need -= start - t
            t = end
        return t + need

    def schedule(self, pending: Pending) -> None:
        """Queue an answer for its due time."""
        with self.changed:
            due = self.finish(pending.arrived)
            heapq.heappush(self._heap, (due, next(self._seq), pending))
            if self._heap[0][2] is pending:
                self.changed.notify()

    def stall(self, start: float, seconds: float) -> tuple[float, float]:
        """Stop the clock for ``[start, start + seconds)``; every pending answer moves."""
        with self.changed:
            merged: list[tuple[float, float]] = []
            for s, e in sorted([*self.stalls, (start, start + seconds)]):
                if merged and s <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], e))
                else:
                    merged.append((s, e))
            self.stalls = merged
            self._heap = [(self.finish(p.arrived), n, p) for _, n, p in self._heap]
            heapq.heapify(self._heap)
            self.changed.notify()
        return start, start + seconds

    def answer_forever(self) -> None:
        """The answering thread: send each pending answer at its due time."""
        while True:
            with self.changed:
                while True:
                    wait = self._heap[0][0] - time.time() - SPIN_S if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self.changed.wait(wait)
                due, _, pending = self._heap[0]
            now = time.time()
            while now < due:
                now = time.time()
            with self.changed:
                if not self._heap or self._heap[0][2] is not pending or self._heap[0][0] != due:
                    continue  # a stall moved it meanwhile
                heapq.heappop(self._heap)
            self._send(pending, time.time())

    def _send(self, pending: Pending, answered: float) -> None:
        conn = pending.conn
        try:
            sent = conn.sock.send(_OK_CLOSE if pending.close else _OK)
        except OSError:
            sent = 0
        if sent and len(self.records) < self.max_records:
            self.records.append((pending.arrived, pending.read, answered, pending.query))
        elif sent:
            self.truncated += 1
        if pending.close or not sent:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # the reader sees it and closes
            return
        conn.busy = False
        if conn.buffer:  # a request arrived while this one was pending: the reader parses it
            self._wake_reader(conn)

    def as_json(self) -> bytes:
        """The whole record."""
        return json.dumps(
            {
                "delay_ms": self.delay_s * 1000.0,
                "stalls": self.stalls,
                "requests": list(self.records),
                "truncated": self.truncated,
            }
        ).encode()

    def reset(self, delay_s: float | None = None) -> None:
        """Forget requests and stalls; optionally set a new delay."""
        with self.changed:
            if delay_s is not None:
                self.delay_s = delay_s
            self.records = []
            self.truncated = 0
            self.stalls = []
            self._heap = [(self.finish(p.arrived), n, p) for _, n, p in self._heap]
            heapq.heapify(self._heap)
            self.changed.notify()


class _BadRequest(Exception):
    pass


def _timestamp(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return float(sec) + float(nsec) / 1e9
    return None


def _answer(status: str, body: bytes, close: bool, kind: bytes = b"application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode()
    head += b"content-type: " + kind + b"\r\n"
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


def _parse(head: str) -> tuple[str, str, str, dict[str, str]]:
    lines = head.split("\r\n")
    method, target, version = lines[0].split(" ")
    if not version.startswith("HTTP/1."):
        raise _BadRequest("505 HTTP Version Not Supported")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


class Server:
    """The reading thread: accepts, reads, parses; control paths answered here at once."""

    def __init__(self, listener: socket.socket, truth_delay_s: float, max_records: int):
        self.listener = listener
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._to_parse: collections.deque[Conn] = collections.deque()
        self.truth = Truth(truth_delay_s, max_records, self._wake)
        self.epoll.register(listener.fileno(), select.EPOLLIN)
        self.epoll.register(self._wake_r, select.EPOLLIN)

    def _wake(self, conn: Conn) -> None:
        """(answering thread) parse this connection's next request."""
        self._to_parse.append(conn)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def serve_forever(self) -> None:
        """Read and parse until killed."""
        listen_fd = self.listener.fileno()
        while True:
            for fd, _ in self.epoll.poll():
                if fd == listen_fd:
                    self._accept()
                elif fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 65536)
                    while self._to_parse:
                        self._parse(self._to_parse.popleft())
                else:
                    conn = self.conns.get(fd)
                    if conn is not None:
                        self._read(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            conn = Conn(sock)
            self.conns[sock.fileno()] = conn
            self.epoll.register(sock.fileno(), select.EPOLLIN)

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(fd)
        conn.sock.close()

    def _read(self, conn: Conn) -> None:
        try:
            data, ancdata, _, _ = conn.sock.recvmsg(65536, _ANC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.stamp = _timestamp(ancdata) or time.time()
        conn.buffer += data
        self._parse(conn)

    def _parse(self, conn: Conn) -> None:
        while not conn.busy and not conn.closed:
            end = conn.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buffer) > MAX_HEAD:
                    too_long = _answer("431 Request Header Fields Too Large", b"{}", True)
                    self._reply(conn, too_long, close=True)
                return
            read = time.time()
            try:
                method, target, version, headers = _parse(conn.buffer[:end].decode("latin-1"))
                length = int(headers.get("content-length", "0"))
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    raise _BadRequest("411 Length Required")
            except (ValueError, _BadRequest) as exc:
                status = str(exc) if isinstance(exc, _BadRequest) else "400 Bad Request"
                self._reply(conn, _answer(status, b"{}", True), close=True)
                return
            if len(conn.buffer) < end + 4 + length:
                return  # the body is still on its way
            conn.buffer = conn.buffer[end + 4 + length :]
            connection = headers.get("connection", "").lower()
            close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
            path, _, query = target.partition("?")
            if method == "GET" and path == "/":
                conn.busy = True
                self.truth.schedule(Pending(conn, conn.stamp or read, read, query, close))
                return
            self._reply(conn, _control(self.truth, method, path, query, close), close)

    def _reply(self, conn: Conn, data: bytes, close: bool) -> None:
        """A control answer, sent whole (the socket blocks for it, up to 10 s)."""
        try:
            conn.sock.settimeout(10.0)
            conn.sock.sendall(data)
            conn.sock.setblocking(False)
        except OSError:
            close = True
        if close:
            self._close(conn)


def _control(truth: Truth, method: str, path: str, query: str, close: bool) -> bytes:
    if method == "GET" and path in ("/healthz", "/readyz"):
        return _answer("200 OK", b'{"ok": true}', close)
    if method == "GET" and path == "/truth":
        return _answer("200 OK", truth.as_json(), close)
    if method == "POST" and path == "/reset":
        try:
            delay_ms = float(parse_qs(query)["delay_ms"][0]) if "delay_ms" in query else None
        except (KeyError, ValueError):
            delay_ms = -1.0
        if delay_ms is not None and not 0 <= delay_ms <= 600_000:
            return _answer("400 Bad Request", b'{"error": "delay_ms in [0, 600000]"}', close)
        truth.reset(None if delay_ms is None else delay_ms / 1000.0)
        return _answer("200 OK", json.dumps({"delay_ms": truth.delay_s * 1000}).encode(), close)
    if method == "POST" and path == "/stall":
        params = parse_qs(query)
        try:
            seconds = float(params["s"][0])
            at = float(params["at"][0]) if "at" in params else time.time()
        except (KeyError, ValueError):
            usage = b'{"error": "POST /stall?s=SECONDS[&at=UNIX]"}'
            return _answer("400 Bad Request", usage, close)
        if not 0 < seconds <= 600:
            return _answer("400 Bad Request", b'{"error": "s must be in (0, 600]"}', close)
        start, end = truth.stall(at, seconds)
        return _answer("200 OK", json.dumps({"start": start, "end": end}).encode(), close)
    return _answer("404 Not Found", b'{"error": "not found"}', close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--max-records", type=int, default=2_000_000)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the ground-truth server only listens on loopback")
    if not 0 <= args.delay_ms <= 600_000:
        parser.error("--delay-ms must be within [0, 600000]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _fine_timer_slack()  # inherited by the answering thread
    sys.setswitchinterval(0.0005)  # the answering thread never waits long for the reader
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # accepted sockets inherit it
    listener.bind((args.host, args.port))
    listener.listen(4096)
    listener.setblocking(False)
    server = Server(listener, args.delay_ms / 1000.0, args.max_records)
    threading.Thread(target=server.truth.answer_forever, name="answer", daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
