"""The console's terminal view of a live snapshot (:mod:`shakeout.gameday.snapshot`).

:func:`render` is pure: one snapshot in, one rich renderable out, which the console redraws
inside ``rich.live.Live``. The view fits 80 columns by 24 rows for a drill like
:func:`~shakeout.gameday.snapshot.sample`, and reads without colour: every objective's light is
also a text marker (``[ OK ]``, ``[NEAR]``, ``[FAIL]``, ``[ -- ]``). ``large=True`` is the
projector layout: the fault countdown and the objectives first, bold, with blank lines between
sections and fewer items. Data is always wrapped in :class:`~rich.text.Text`, never parsed as
markup, so a step or a note reading ``[FAIL]`` shows as written.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from shakeout.gameday.snapshot import SPARK_S, Fault, Journey, Light, ObjectiveLight, Snapshot

KEYS_HELP = "g go · n note · h hold +10s · e end fault · a abort · q quit"
WAITING = "waiting for the drill to start…"
BLOCKS = "▁▂▃▄▅▆▇█"
MARKERS: dict[Light, str] = {
    "green": "[ OK ]",
    "amber": "[NEAR]",
    "red": "[FAIL]",
    "none": "[ -- ]",
}
STYLES: dict[Light, str] = {
    "green": "bold green",
    "amber": "bold yellow",
    "red": "bold white on red",
    "none": "dim",
}
# How many of the latest items the timeline shows: (normal, large).
EVENTS = (5, 3)
ALERTS = (3, 2)
NOTES = (2, 1)
NAME_MAX = 14  # a journey's name is cut beyond this
NUMBER_WIDTHS = (6, 7, 7, 6)  # req/s, p95, p99, err
MIN_SPARK = 10  # a sparkline narrower than this is left out


def sparkline(values: Sequence[float | None], width: int) -> str:
    """``values`` drawn in ``width`` block characters, scaled to their maximum.

    Each character shows the maximum of its share of the values (a spike is never averaged
    away); a share with no value is a space; a zero is the lowest block and anything above zero
    at least the second lowest. Hand-written: rich has no sparkline, and ten lines beat a
    dependency.
    """
    present = [v for v in values if v is not None]
    top = max(present, default=0.0)
    chars = []
    for i in range(width):
        start = i * len(values) // width
        bucket = values[start : max(start + 1, (i + 1) * len(values) // width)]
        peak = max((v for v in bucket if v is not None), default=None)
        if peak is None:
            chars.append(" ")
        else:
            level = math.ceil(max(peak, 0.0) / top * (len(BLOCKS) - 1)) if top > 0 else 0
            chars.append(BLOCKS[min(level, len(BLOCKS) - 1)])
    return "".join(chars)


def last_minute(values: Sequence[float | None]) -> list[float | None]:
    """The last :data:`SPARK_S` values, padded on the left with None (before the drill)."""
    kept: list[float | None] = list(values[-SPARK_S:])
    return [None] * (SPARK_S - len(kept)) + kept


def countdown(fault: Fault, now: float) -> str:
    """When the fault ends, in whole seconds: "ends in 12 s", "elapsed 4 s" or "not started"."""
    if fault["started_at"] is None:
        return "not started"
    if fault["ends_at"] is None:
        return f"elapsed {math.floor(max(now - fault['started_at'], 0.0))} s"
    return f"ends in {math.ceil(max(fault['ends_at'] - now, 0.0))} s"


def hold(fault: Fault) -> str:
    """The facilitator's holds against the target's cap: "held +10 s of 60 s cap"."""
    return f"held +{fault['held_s']:.0f} s of {fault['hold_cap_s']:.0f} s cap"


def clock(seconds: float) -> str:
    """Seconds as mm:ss (minutes go past 59 rather than wrap)."""
    minutes, secs = divmod(int(max(seconds, 0.0)), 60)
    return f"{minutes:02d}:{secs:02d}"


def quantity(value: float | None, unit: str) -> str:
    """An observed value or threshold with its unit: "0.42%", "120 ms", "no data"."""
    if value is None:
        return "no data"
    number = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{number}%" if unit == "%" else f"{number} {unit}"


def render(
    snapshot: Snapshot | None,
    *,
    large: bool = False,
    keys: str = KEYS_HELP,
    width: int = 80,
    height: int = 24,
) -> RenderableType:
    """The whole view of ``snapshot`` (None: before the drill's first snapshot), fitted to a
    ``width`` x ``height`` terminal: when rows run short the timeline gives way first, then
    the objectives that are green (the others always show)."""
    footer = Text(keys, style="dim", no_wrap=True, overflow="ellipsis")
    if snapshot is None:
        return Group(Text(WAITING, style="bold"), Text(), footer)
    fault = snapshot.get("fault")
    countdown_lines = _fault(fault, snapshot["now"], large=large) if fault else []
    header = _header(snapshot, large=large)
    prompt = _prompt(snapshot)
    journeys = snapshot.get("journeys") or []
    fixed = len(header) + len(countdown_lines) + 1 + max(1, len(journeys) + 1)
    if prompt:
        fixed += -(-len(prompt[0].plain) // max(width, 1))  # the rows the prompt wraps to
    # a blank line between sections (and before the footer in the large layout): the top,
    # the journeys, the objectives and the timeline; when large, the top is four sections
    blanks = 3 + (2 + bool(prompt) + bool(countdown_lines) if large else 0)
    room = height - fixed - blanks
    objectives = _objectives(snapshot.get("objectives") or [], large=large, rows=room)
    room -= len(objectives) and min(room, len(snapshot.get("objectives") or []))
    timeline = _timeline(snapshot, large=large, rows=room - 1)
    table: list[RenderableType] = [_Journeys(journeys, p95=not large)]
    if large:
        first: list[RenderableType] = [*prompt]
        sections = [first, countdown_lines, objectives, header, table, timeline]
        return Group(*_spaced([*sections, [footer]]))
    top = [*header, *prompt, *countdown_lines]
    return Group(*_spaced([top, table, objectives, timeline]), footer)


SEVERITY = {"red": 0, "amber": 1, "none": 2, "green": 3}


def _fitted(
    objectives: list[ObjectiveLight], rows: int
) -> tuple[list[ObjectiveLight], list[ObjectiveLight]]:
    """At most ``rows`` lines of objectives, in their order, chosen worst light first; when
    some are left out (returned second) the last line says so, and one fewer is shown."""
    if len(objectives) <= rows:
        return objectives, []
    keep = max(rows - 1, 0)
    worst = sorted(range(len(objectives)), key=lambda i: SEVERITY[objectives[i]["light"]])
    shown = sorted(worst[:keep])
    return [objectives[i] for i in shown], [objectives[i] for i in sorted(worst[keep:])]


def _spaced(sections: Iterable[list[RenderableType]]) -> list[RenderableType]:
    """The sections that are not empty, a blank line between each two."""
    parts: list[RenderableType] = []
    for section in (s for s in sections if s):
        parts += [Text(), *section] if parts else section
    return parts


def to_text(
    snapshot: Snapshot | None, *, large: bool = False, width: int = 80, height: int = 24
) -> str:
    """The view as plain text on a ``width`` x ``height`` console (not cut to its height)."""
    console = _recording(width, height, colour=False)
    console.print(render(snapshot, large=large))
    return console.export_text()


def to_svg(
    snapshot: Snapshot | None,
    path: Path,
    *,
    large: bool = False,
    width: int = 80,
    height: int = 24,
    title: str = "ShakeOut game day",
) -> None:
    """Write the view, in colour, as an SVG screenshot of a ``width`` x ``height`` terminal."""
    console = _recording(width, height, colour=True)
    console.print(render(snapshot, large=large))
    path.write_text(console.export_svg(title=title), encoding="utf-8")


def _recording(width: int, height: int, *, colour: bool) -> Console:
    """A console that records what it prints and writes it nowhere."""
    return Console(
        file=io.StringIO(),
        record=True,
        width=width,
        height=height,
        force_terminal=colour,
        color_system="truecolor" if colour else None,
    )


def _line(*parts: tuple[str, str] | str) -> Text:
    """One line, cut with an ellipsis rather than wrapped."""
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


def _header(snapshot: Snapshot, *, large: bool) -> list[RenderableType]:
    """Feature / scenario and the elapsed time; target, state, phase; the current step (on the
    status line in the large layout, which leaves the target out)."""
    title = Table.grid(expand=True)
    title.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    title.add_column(justify="right", no_wrap=True)
    title.add_row(
        Text(f"{snapshot['feature']} / {snapshot['scenario']}", style="bold"),
        Text(clock(snapshot["now"] - snapshot["started_at"]), style="bold"),
    )
    status: list[tuple[str, str] | str] = (
        [] if large else ["target ", (snapshot["target"], "bold"), " · "]
    )
    status += [
        "state ",
        (snapshot["state"], "bold"),
        " · phase ",
        (snapshot.get("phase") or "-", "bold"),
    ]
    if snapshot.get("outcome"):
        status += [" · outcome ", (str(snapshot["outcome"]), "bold")]
    step = snapshot.get("step")
    step_parts: list[tuple[str, str] | str] = (
        [f"step {step['index']}/{step['total']}: ", (step["keyword"], "bold"), f" {step['text']}"]
        if step
        else ["step -"]
    )
    if large:
        return [title, _line(*status, " · ", *step_parts)]
    return [title, _line(*status), _line(*step_parts)]


def _prompt(snapshot: Snapshot) -> list[Text]:
    """What the console waits for, in reverse video; it wraps rather than lose words."""
    prompt = snapshot.get("prompt")
    if not prompt:
        return []
    return [Text(f"{snapshot['state'].upper()}: {prompt}", style="bold reverse")]


def _fault(fault: Fault, now: float, *, large: bool) -> list[RenderableType]:
    """The active fault: its word, countdown and holds, then its reach."""
    emphasis = "bold" if large else ""
    lines: list[RenderableType] = [
        _line(
            ("FAULT ", "bold red"),
            (fault["word"], "bold red"),
            "  ",
            (countdown(fault, now), "bold"),
            (f"  {hold(fault)}", emphasis),
        )
    ]
    if not large:  # the projector leaves the reach to the console
        lines.append(_line("  reach: ", fault["reach"]))
    return lines


def _objectives(
    objectives: list[ObjectiveLight], *, large: bool, rows: int = 99
) -> list[RenderableType]:
    """One line per objective: its light as a marker, text, observed vs threshold, burn (in
    ``rows`` lines at most: see ``_fitted``)."""
    objectives, left = _fitted(objectives, rows)
    if not objectives and not left:
        return []
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    for objective in objectives:
        light, unit, burn = objective["light"], objective["unit"], objective["burn_rate"]
        table.add_row(
            Text(MARKERS[light], style=STYLES[light]),
            Text(objective["text"]),
            Text(quantity(objective["observed"], unit)),
            Text(f"vs {quantity(objective['threshold'], unit)}"),
            Text(f"burn {burn:.1f}x" if burn is not None else ""),
            style="bold" if large else "",
        )
    if left:
        green = all(o["light"] == "green" for o in left)
        more = f"… and {len(left)} more objectives" + (", all green" if green else "")
        return [table, Text(more, style="dim")]
    return [table]


def _timeline(snapshot: Snapshot, *, large: bool, rows: int = 99) -> list[RenderableType]:
    """The latest events, alerts (firing ones highlighted) and notes, oldest first, each timed
    from the fault's start when a fault has started, else from the drill's; at most ``rows``
    of them (none when fewer than one fits)."""
    size = 1 if large else 0
    fault = snapshot.get("fault")
    if fault and fault["started_at"] is not None:
        origin, since = fault["started_at"], "fault start"
    else:
        origin, since = snapshot["started_at"], "drill start"
    found: list[tuple[float, str, str, str]] = [
        (e["t"], "event", e["text"], "") for e in (snapshot.get("events") or [])[-EVENTS[size] :]
    ]
    found += [
        (a["since"], "ALERT", f"{a['name']} {a['state']}", "bold red")
        if a["state"] == "firing"
        else (a["since"], "alert", f"{a['name']} {a['state']}", "")
        for a in (snapshot.get("alerts") or [])[-ALERTS[size] :]
    ]
    found += [
        (n["t"], "note", n["text"], "italic") for n in (snapshot.get("notes") or [])[-NOTES[size] :]
    ]
    if not found or rows < 1:
        return []
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis")
    for t, kind, text, style in sorted(found, key=lambda row: row[0])[-rows:]:
        table.add_row(
            Text(f"{t - origin:+.1f} s"), Text(kind, style=style or "dim"), Text(text, style=style)
        )
    return [Text(f"latest (seconds from {since})", style="bold"), table]


class _Journeys:
    """The journeys' numbers and sparklines; the sparklines share the width the numbers leave."""

    def __init__(self, journeys: list[Journey], *, p95: bool) -> None:
        self.journeys = journeys
        self.p95 = p95

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """A table as wide as the console allows (rich calls this with the available width)."""
        if not self.journeys:
            yield Text("no journeys yet", style="dim")
            return
        name_width = min(NAME_MAX, max(len("journey"), *(len(j["name"]) for j in self.journeys)))
        spare = options.max_width - name_width - sum(NUMBER_WIDTHS) - len(NUMBER_WIDTHS)
        sparks = 2 if self.p95 and spare >= 2 * (MIN_SPARK + 1) else 1
        spark_width = min(SPARK_S, spare // sparks - 1)
        if spark_width < MIN_SPARK:
            sparks = 0
        table = Table.grid(padding=(0, 1))
        table.add_column(width=name_width, no_wrap=True, overflow="ellipsis")
        for width in NUMBER_WIDTHS:
            table.add_column(width=width, justify="right", no_wrap=True)
        for _ in range(sparks):
            table.add_column(width=spark_width, no_wrap=True, overflow="ellipsis")
        headings = ["journey", "req/s", "p95", "p99", "err", "errors, 1 min", "p95, 1 min"]
        table.add_row(*(Text(h, style="bold") for h in headings[: 5 + sparks]))
        for journey in self.journeys:
            table.add_row(*_journey_cells(journey, sparks, spark_width))
        yield table


def _journey_cells(journey: Journey, sparks: int, width: int) -> Iterable[Text]:
    """A journey's row: name, rate, p95, p99, error % and up to two sparklines."""
    error_style = "bold red" if journey["error_pct"] > 0 else ""
    yield Text(journey["name"])
    yield Text(f"{journey['rate_rps']:.1f}")
    yield Text(quantity(journey["p95_ms"], "ms") if journey["p95_ms"] is not None else "-")
    yield Text(quantity(journey["p99_ms"], "ms") if journey["p99_ms"] is not None else "-")
    yield Text(f"{journey['error_pct']:.1f}%", style=error_style)
    series: list[tuple[Sequence[float | None], str]] = [
        (journey["spark"]["error_pct"], "red"),
        (journey["spark"]["p95_ms"], "cyan"),
    ]
    for values, style in series[:sparks]:
        yield Text(sparkline(last_minute(values), width), style=style)
