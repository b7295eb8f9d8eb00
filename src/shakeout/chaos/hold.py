"""Holding a fault for its planned time, or longer when a game day's facilitator holds it.

The ``hold-the-fault`` probe of every experiment (``observe``, local and Kubernetes) waits
here. Under a game-day console the drill process names a folder in ``SHAKEOUT_FAULT_HOLD_DIR``
(the ``chaos run`` child inherits it): the probe writes ``holding.json`` (when the hold began
and for how long it was planned) and reads the extra seconds the facilitator added from
``hold.json`` while it waits. Without it (``chaos run`` by hand, a plain drill) this is a
sleep of ``seconds``. Ending the fault early needs nothing here: the harness aborts the
method (SIGUSR1) and the rollbacks play.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

HOLD_ENV = "SHAKEOUT_FAULT_HOLD_DIR"
EXTRA_FILE = "hold.json"  # written by the drill process: {"extra_s": seconds added}
HOLDING_FILE = "holding.json"  # written here: {"since": epoch s, "planned_s": seconds}
POLL_S = 0.1


def _extra_s(folder: Path) -> float:
    try:
        return float(json.loads((folder / EXTRA_FILE).read_text(encoding="utf-8"))["extra_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def write_json(path: Path, data: dict[str, float]) -> None:
    """Replace ``path`` atomically (the reader polls it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def hold_fault(seconds: float) -> float:
    """Wait ``seconds`` plus what a facilitator added meanwhile; return the seconds held."""
    folder = os.environ.get(HOLD_ENV)
    started = time.monotonic()
    if not folder:
        time.sleep(seconds)  # holding the fault is the point of this activity
        return float(seconds)
    where = Path(folder)
    write_json(where / HOLDING_FILE, {"since": time.time(), "planned_s": float(seconds)})
    while True:
        left = started + seconds + _extra_s(where) - time.monotonic()
        if left <= 0:
            return time.monotonic() - started
        time.sleep(min(left, POLL_S))  # polls hold.json: a hold may extend the wait
