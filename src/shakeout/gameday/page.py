"""The room's read-only live page: the drill's live snapshot, large, on the projector.

:class:`LivePage` serves two GETs on loopback: ``/`` (the page) and ``/live.json`` (the live
file as the drill process last wrote it). The page fetches ``/live.json`` every second and draws
what the console's terminal view shows (:mod:`shakeout.gameday.view`). It has no control at
all: the facilitator drives the drill from the console, the room only watches. Its script
writes data with ``textContent`` only, and a Content-Security-Policy admits only its own inline
script and style (by hash), fetches to its own origin, and no form.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shakeout.gameday.snapshot import SPARK_S

STALE_S = 5  # the page says "stale" when the snapshot's ``now`` stands still this long
MAX_DISCARD = 65536  # the most of a refused request's body read (so the reply is not reset)

_STYLE = """
[hidden] { display: none !important; }
body { margin: 0; padding: 12px 24px; background: #fff; color: #111;
  font: 22px/1.3 system-ui, "DejaVu Sans", sans-serif; }
h1 { font-size: 30px; margin: 0; }
h2 { font-size: 18px; margin: 8px 0 2px; text-transform: uppercase; color: #333; }
ul { list-style: none; margin: 0; padding: 0; }
li { margin: 2px 0; }
.bar { display: flex; flex-wrap: wrap; gap: 2px 24px; align-items: baseline; }
.bar > * { white-space: nowrap; }
#freshness { margin-left: auto; font-size: 20px; }
#stale { background: #b71c1c; color: #fff; font-weight: bold; padding: 0 8px; }
body.stale main { opacity: 0.45; }
#prompt { background: #ffe082; border: 3px solid #111; font-weight: bold; font-size: 26px;
  padding: 4px 12px; margin: 8px 0 0; }
#waiting { font-size: 32px; font-weight: bold; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 420px; gap: 4px 32px; margin-top: 8px;
  grid-template-areas: "now timeline" "traffic traffic"; }
#now { grid-area: now; }
#timeline { grid-area: timeline; }
#traffic { grid-area: traffic; }
#fault { border: 3px solid #b71c1c; padding: 4px 12px; margin-bottom: 4px; }
#fault-word { color: #b71c1c; font-weight: bold; }
#countdown { font-size: 34px; font-weight: bold; }
#reach { font-size: 18px; color: #333; }
.objective { margin: 6px 0; }
.objective > span { margin-right: 6px; }
.objective .observed, .objective .burn { white-space: nowrap; }
.marker { font: bold 22px ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre;
  padding: 0 6px; border: 2px solid #111; }
.objective[data-light="green"] .marker { background: #1b5e20; color: #fff; }
.objective[data-light="amber"] .marker { background: #ffb300; color: #111; }
.objective[data-light="red"] .marker { background: #b71c1c; color: #fff; }
.objective[data-light="none"] .marker { background: #e0e0e0; color: #111; }
.objective .text { font-weight: bold; }
table { border-collapse: collapse; }
th { font-size: 18px; text-align: right; padding: 0 12px; color: #333; white-space: nowrap; }
td { text-align: right; padding: 2px 12px; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; padding-left: 0; }
td.error.nonzero { color: #b71c1c; font-weight: bold; }
.spark { width: 240px; height: 28px; vertical-align: middle; background: #eee; }
.spark rect { shape-rendering: crispEdges; }
.spark.errors rect { fill: #b71c1c; }
.spark.p95 rect { fill: #0d47a1; }
.time { font-variant-numeric: tabular-nums; white-space: nowrap; }
#alerts li.firing { background: #b71c1c; color: #fff; font-weight: bold; padding: 0 6px; }
#notes li { font-style: italic; }
#since { font-size: 18px; color: #333; }
"""

# The constants it shares with Python first, then a plain string: no braces to double.
_SCRIPT = (
    f"""
"use strict";
const SPARK_S = {SPARK_S}, STALE_MS = {STALE_S * 1000};
"""
    + """
const LEVELS = 8;
const MARKERS = {green: "[ OK ]", amber: "[NEAR]", red: "[FAIL]", none: "[ -- ]"};
const FINAL = new Set(["done", "aborted"]);
const SVG = "http://www.w3.org/2000/svg";
let lastRaw = null, lastNow = null, lastChange = 0, state = null;
const $ = (id) => document.getElementById(id);
const pad = (n) => String(n).padStart(2, "0");
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
function clock(s) {
  s = Math.max(0, Math.floor(s));
  return pad(Math.floor(s / 60)) + ":" + pad(s % 60);
}
function hms(t) {
  const d = new Date(t * 1000);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}
function rel(t, origin) {
  const d = t - origin;
  return (d < 0 ? "-" : "+") + Math.abs(d).toFixed(1) + " s";
}
function quantity(v, unit) {
  if (v === null || v === undefined) return "no data";
  const n = Math.abs(v) < 1000 ? String(Number(v.toPrecision(3))) : v.toFixed(0);
  return unit === "%" ? n + "%" : n + " " + unit;
}
function countdown(f, now) {
  if (f.started_at === null) return "not started";
  if (f.ends_at === null) return "elapsed " + Math.floor(Math.max(now - f.started_at, 0)) + " s";
  return "ends in " + Math.ceil(Math.max(f.ends_at - now, 0)) + " s";
}
function spark(values, cls) {
  // One bar a second over the last minute, scaled to its maximum: the terminal's blocks.
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark " + cls);
  svg.setAttribute("viewBox", "0 0 " + SPARK_S + " " + LEVELS);
  svg.setAttribute("preserveAspectRatio", "none");
  const win = values.slice(-SPARK_S), offset = SPARK_S - win.length;
  const top = Math.max(0, ...win.filter((v) => v !== null));
  win.forEach((v, i) => {
    if (v === null) return;
    const scaled = top > 0 ? Math.ceil((Math.max(v, 0) / top) * (LEVELS - 1)) : 0;
    const level = Math.min(LEVELS - 1, scaled);
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", offset + i);
    bar.setAttribute("y", LEVELS - 1 - level);
    bar.setAttribute("width", 1);
    bar.setAttribute("height", level + 1);
    svg.appendChild(bar);
  });
  return svg;
}
function objective(o) {
  const li = el("li", "objective");
  li.dataset.light = o.light;
  const burn = o.burn_rate === null ? "" : "burn " + o.burn_rate.toFixed(1) + "x";
  const observed = quantity(o.observed, o.unit) + " vs " + quantity(o.threshold, o.unit);
  li.append(el("span", "marker", MARKERS[o.light] || MARKERS.none), " ",
    el("span", "text", o.text), " ", el("span", "observed", observed), " ",
    el("span", "burn", burn));
  return li;
}
function journey(j) {
  const tr = el("tr", "journey");
  tr.dataset.name = j.name;
  const ms = (v) => (v === null ? "-" : quantity(v, "ms"));
  tr.append(el("td", "name", j.name), el("td", "rate", j.rate_rps.toFixed(1)),
    el("td", "p95", ms(j.p95_ms)), el("td", "p99", ms(j.p99_ms)),
    el("td", "error" + (j.error_pct > 0 ? " nonzero" : ""), j.error_pct.toFixed(1) + "%"));
  for (const [values, cls] of [[j.spark.error_pct, "errors"], [j.spark.p95_ms, "p95"]]) {
    const td = el("td", "sparkline");
    td.append(spark(values, cls));
    tr.append(td);
  }
  return tr;
}
function lines(id, items, origin, make) {
  $(id).replaceChildren(...items.map((item) => {
    const [t, text, cls] = make(item);
    const li = el("li", cls);
    li.append(el("span", "time", rel(t, origin)), " ", el("span", "text", text));
    return li;
  }));
}
function render(s) {
  $("waiting").hidden = true;
  $("live").hidden = false;
  for (const key of ["feature", "scenario", "target", "state"]) $(key).textContent = s[key];
  $("phase").textContent = s.phase || "-";
  $("elapsed").textContent = clock(s.now - s.started_at);
  $("outcome").textContent = s.outcome ? "outcome " + s.outcome : "";
  $("step").textContent = s.step
    ? "step " + s.step.index + "/" + s.step.total + ": " + s.step.keyword + " " + s.step.text
    : "step -";
  $("prompt").hidden = !s.prompt;
  $("prompt").textContent = s.prompt ? s.state.toUpperCase() + ": " + s.prompt : "";
  const f = s.fault;
  $("fault").hidden = !f;
  if (f) {
    $("fault-word").textContent = f.word;
    $("countdown").textContent = countdown(f, s.now);
    $("hold").textContent =
      "held +" + f.held_s.toFixed(0) + " s of " + f.hold_cap_s.toFixed(0) + " s cap";
    $("reach").textContent = "reach: " + f.reach;
  }
  $("objectives").replaceChildren(...(s.objectives || []).map(objective));
  $("journeys").replaceChildren(...(s.journeys || []).map(journey));
  const faulted = f && f.started_at !== null;
  const origin = faulted ? f.started_at : s.started_at;
  const since = faulted ? "the fault's start" : "the drill's start";
  $("since").textContent = "times in seconds from " + since;
  lines("events", (s.events || []).slice(-8), origin, (e) => [e.t, e.text, "event"]);
  lines("alerts", (s.alerts || []).slice(-4), origin,
    (a) => [a.since, a.name + " " + a.state, a.state === "firing" ? "alert firing" : "alert"]);
  lines("notes", (s.notes || []).slice(-4), origin, (n) => [n.t, n.text, "note"]);
  $("updated").textContent = "last update: " + hms(s.now);
}
async function tick() {
  let problem = null;
  try {
    const signal = AbortSignal.timeout(3000);  // a hung request is a failed one
    const response = await fetch("live.json", {cache: "no-store", signal});
    if (response.status !== 503) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      const raw = await response.text();
      if (raw !== lastRaw) {  // a new document only: between two writes the page stays put
        const s = JSON.parse(raw);
        render(s);
        if (s.now !== lastNow) [lastNow, lastChange] = [s.now, Date.now()];
        [lastRaw, state] = [raw, s.state];
      }
    }
  } catch (error) {
    problem = "cannot read the drill's snapshot";
  }
  const still = Date.now() - lastChange;
  if (!problem && lastNow !== null && !FINAL.has(state) && still > STALE_MS)
    problem = "no new snapshot for " + Math.floor(still / 1000) + " s";
  $("stale").hidden = !problem;
  $("stale").textContent = problem ? "STALE: " + problem : "";
  document.body.classList.toggle("stale", Boolean(problem));
  setTimeout(tick, 1000);
}
tick();
"""
)

_BODY = """
<header>
  <div class="bar">
    <h1><span id="feature"></span> / <span id="scenario"></span></h1>
    <div id="freshness"><span id="updated">last update: --:--:--</span>
      <span id="stale" hidden></span></div>
  </div>
  <div class="bar">
    <span>target <b id="target"></b></span><span>state <b id="state"></b></span>
    <span>phase <b id="phase"></b></span><span>elapsed <b id="elapsed"></b></span>
    <b id="outcome"></b>
  </div>
  <div id="step"></div>
</header>
<p id="waiting">waiting for the drill to start…</p>
<div id="live" hidden>
  <p id="prompt" hidden></p>
  <main>
    <section id="now">
      <div id="fault" hidden>
        <div class="bar"><span>FAULT <span id="fault-word"></span></span>
          <span id="countdown"></span><span id="hold"></span></div>
        <div id="reach"></div>
      </div>
      <h2>objectives</h2>
      <ul id="objectives"></ul>
    </section>
    <section id="timeline">
      <div id="since"></div>
      <h2>alerts</h2><ul id="alerts"></ul>
      <h2>events</h2><ul id="events"></ul>
      <h2>notes</h2><ul id="notes"></ul>
    </section>
    <section id="traffic">
      <table>
        <thead><tr><th>journey</th><th>req/s</th><th>p95</th><th>p99</th><th>err</th>
          <th>errors, last minute</th><th>p95, last minute</th></tr></thead>
        <tbody id="journeys"></tbody>
      </table>
    </section>
  </main>
</div>
"""


def _sha256(source: str) -> str:
    """A CSP source expression admitting exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    "<title>ShakeOut game day</title>\n"
    f"<style>{_STYLE}</style>\n</head>\n<body>{_BODY}<script>{_SCRIPT}</script>\n</body>\n</html>\n"
)
CSP = (
    f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_JSON = "application/json"


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD of ``/`` and ``/live.json``; any method that would change something is
    refused with 405."""

    server_version = "ShakeOut"
    sys_version = ""

    def __init__(self, *args: Any, live_file: Path, **kwargs: Any) -> None:
        self.live_file = live_file
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        """The page, the snapshot, or 404."""
        self._answer(body=True)

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self._answer(body=False)

    def _refuse(self) -> None:
        """405: the page only reads."""
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= MAX_DISCARD:
            self.rfile.read(int(length))
        error = {"error": "the game-day page is read-only"}
        self._send(405, _JSON, json.dumps(error).encode(), body=True, allow="GET, HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _answer(self, *, body: bool) -> None:
        """Route a GET or HEAD."""
        path = urlsplit(self.path).path
        if path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE.encode(), body=body, csp=CSP)
        elif path == "/live.json":
            try:
                data = self.live_file.read_bytes()
            except FileNotFoundError:
                self._send(503, _JSON, b'{"error": "no snapshot yet"}', body=body)
            else:
                self._send(200, _JSON, data, body=body)
        else:
            self._send(404, _JSON, b'{"error": "not found"}', body=body)

    def _send(
        self,
        status: int,
        content_type: str,
        data: bytes,
        *,
        body: bool,
        allow: str | None = None,
        csp: str | None = None,
    ) -> None:
        """One whole response, never cached."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if allow:
            self.send_header("Allow", allow)
        if csp:
            self.send_header("Content-Security-Policy", csp)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the console owns the terminal, and a line per request would scroll it."""


class LivePage:
    """The read-only page of ``live_file`` on ``host:port`` (port 0: a free one), served from
    a daemon thread between :meth:`start` and :meth:`stop`, or as a context manager.

    The standard library's threading server is enough: a read-only page of two GETs needs no
    framework, and the console gains no dependency for it.
    """

    def __init__(self, live_file: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.live_file = live_file
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (known once it is served)."""
        if self._server is None:
            raise RuntimeError("the game-day page is not served: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> str:
        """Serve the page; its URL."""
        if self._server is not None:
            raise RuntimeError(f"the game-day page is already served at {self.url}")
        handler = functools.partial(_Handler, live_file=self.live_file)
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gameday-page", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and free the port (nothing to do when not served)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> LivePage:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
