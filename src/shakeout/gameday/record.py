"""The game-day record: what happened, what the room noticed, and the runbook checklist.

Written by the console once the drills ended (however they ended) from what the drill process
kept of each scenario (``scenarios/NN.json``, :mod:`shakeout.gameday.live`) and the run
folders: a markdown post-incident review skeleton with the timeline, notes, controls,
verdicts and charts; a line in the history of game days (for the count of consecutive passing
game days per feature); and an Allure result of its own with the record attached.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import Attachment, Label, Link, Status, TestResult
from allure_commons.utils import uuid4

HISTORY_FILE = "history.jsonl"
RECORD_FILE = "record.md"
CHECKLIST_HEADING = "runbook checklist"


def checklist_of(description: str) -> list[str]:
    """The items of a feature's ``Runbook checklist:`` (``- item`` lines after it)."""
    items: list[str] = []
    inside = False
    for line in description.splitlines():
        text = line.strip()
        if text.lower().rstrip(":") == CHECKLIST_HEADING:
            inside = True
        elif inside and text.startswith("- "):
            items.append(text[2:].strip())
        elif inside and text:
            break
    return items


def runbooks_of(tags: list[str]) -> list[str]:
    """The runbook links of a feature's ``@runbook:<url>`` tags."""
    return [tag.partition(":")[2] for tag in tags if tag.startswith("runbook:")]


@dataclass
class GameDay:
    """One console session: its scenarios as the drill process kept them, and the room's
    answers to the checklist (item -> pass / fail / not asked)."""

    feature_file: str
    target: str
    started_at: float
    ended_at: float
    scenarios: list[dict[str, Any]]
    checklist: dict[str, str] = field(default_factory=dict)
    console_controls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def feature(self) -> str:
        """The feature's name (its file's when no scenario started)."""
        return str(self.scenarios[0]["feature"]) if self.scenarios else self.feature_file

    @property
    def passed(self) -> bool:
        """Every scenario passed and every checklist item was passed by the room."""
        return (
            bool(self.scenarios)
            and all(s.get("outcome") == "pass" for s in self.scenarios)
            and all(answer == "pass" for answer in self.checklist.values())
        )


def load_scenarios(directory: Path) -> list[dict[str, Any]]:
    """The scenarios the drill process kept, in the order they ran."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((directory / "scenarios").glob("*.json"))
    ]


def consecutive_passes(history: Path, feature_file: str) -> int:
    """How many game days of a feature passed in a row, the latest last."""
    count = 0
    if history.is_file():
        for line in history.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["feature_file"] == feature_file:
                count = count + 1 if entry["passed"] else 0
    return count


def remember(history: Path, day: GameDay, record: Path) -> int:
    """Add a game day to the history; return the feature's consecutive passes with it."""
    history.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "feature_file": day.feature_file,
        "target": day.target,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(day.started_at)),
        "passed": day.passed,
        "record": str(record),
    }
    with history.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    return consecutive_passes(history, day.feature_file)


def _clock(t: float, origin: float) -> str:
    return f"{time.strftime('%H:%M:%S', time.localtime(t))} (+{t - origin:5.1f} s)"


def _verdicts(run_dir: str | None) -> list[dict[str, Any]]:
    if not run_dir:
        return []
    path = Path(run_dir) / "verdicts.json"
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("verdicts", []))


def _faults(run_dir: str | None) -> list[str]:
    """Each fault's Chaos Toolkit journal: how it ended and whether its rollbacks played."""
    lines = []
    for journal in sorted(Path(run_dir).glob("journal-*.json")) if run_dir else []:
        data = json.loads(journal.read_text(encoding="utf-8"))
        rollbacks = [f"{r['activity']['name']} {r['status']}" for r in data.get("rollbacks", [])]
        lines.append(
            f"- fault {journal.stem.removeprefix('journal-')}: experiment {data.get('status')}; "
            f"rollbacks: {', '.join(rollbacks) or 'none'}"
        )
    return lines


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _scenario_section(number: int, scenario: dict[str, Any], out: Path) -> list[str]:
    origin = float(scenario["started_at"])
    lines = [
        f"## {number}. {scenario['scenario']}",
        "",
        f"Outcome: **{scenario.get('outcome') or 'unknown'}**; run folder "
        f"`runs/{Path(str(scenario.get('run_dir'))).name}` (in the reports folder).",
        "",
        "| when | what |",
        "|---|---|",
    ]
    for entry in sorted(scenario.get("timeline", []), key=lambda e: e["t"]):
        lines.append(f"| {_clock(entry['t'], origin)} | {entry['kind']}: {_cell(entry['text'])} |")
    verdicts = _verdicts(scenario.get("run_dir"))
    if verdicts:
        lines += ["", "| objective | observed | verdict |", "|---|---|---|"]
        for verdict in verdicts:
            observed = verdict.get("observed")
            shown = "-" if observed is None else f"{observed:.4g} {verdict.get('unit', '')}"
            status = str(verdict.get("status", "?"))
            lines.append(
                f"| {_cell(verdict.get('objective', ''))} | {_cell(shown.strip())} | "
                f"{status if status == 'pass' else status.upper()} |"
            )
    faults = _faults(scenario.get("run_dir"))
    if faults:
        lines += ["", *faults]
    chart = Path(str(scenario.get("run_dir") or "")) / "chart.png"
    if scenario.get("run_dir") and chart.is_file():
        name = f"{number:02d}-chart.png"
        shutil.copyfile(chart, out / name)
        lines += ["", f"![chart of {scenario['scenario']}]({name})"]
    return [*lines, ""]


def render(day: GameDay, out: Path, consecutive: int) -> str:
    """The record as markdown (charts copied beside it into ``out``)."""
    lines = [
        f"# Game day: {day.feature}",
        "",
        f"- feature: `{day.feature_file}`; target: `{day.target}`",
        f"- from {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(day.started_at))} "
        f"to {time.strftime('%H:%M:%S', time.localtime(day.ended_at))}",
        f"- result: **{'PASS' if day.passed else 'FAIL'}**; consecutive passing game days of "
        f"this feature: **{consecutive}**",
        "",
        "## Review (fill in with the room)",
        "",
        "- What happened:",
        "- Impact on shoppers (see each scenario's verdicts):",
        "- How it was detected, and how fast (see the timeline's events and alerts):",
        "- What the responders did:",
        "- What went well:",
        "- What went wrong:",
        "- Action items (owner, date):",
        "",
    ]
    for number, scenario in enumerate(day.scenarios, start=1):
        lines += _scenario_section(number, scenario, out)
    notes = [n for s in day.scenarios for n in s.get("notes", [])]
    lines += ["## Notes", ""]
    lines += [f"- {_clock(n['t'], day.started_at)} {n['text']}" for n in notes] or ["- none"]
    lines += ["", "## Runbook checklist", ""]
    if day.checklist:
        lines += ["| item | result |", "|---|---|"]
        lines += [f"| {_cell(item)} | {result} |" for item, result in day.checklist.items()]
    else:
        lines.append("The feature has no `Runbook checklist:`.")
    controls = [c for s in day.scenarios for c in s.get("controls", [])]
    seen = {(c["control"], c.get("detail")) for c in controls}
    controls += [c for c in day.console_controls if (c["control"], c.get("detail")) not in seen]
    lines += ["", "## Controls", ""]
    lines += [
        f"- {_clock(c['t'], day.started_at)} {c['control']}"
        + (f": {c['detail']}" if c.get("detail") else "")
        for c in sorted(controls, key=lambda c: c["t"])
    ] or ["- none"]
    return "\n".join(lines) + "\n"


def write(day: GameDay, directory: Path, history: Path) -> tuple[Path, int]:
    """Write ``record.md`` (and the charts) into the game day's folder and add the day to
    the history; return the record's path and the feature's consecutive passing game days."""
    consecutive = consecutive_passes(history, day.feature_file) + 1 if day.passed else 0
    record = directory / RECORD_FILE
    record.write_text(render(day, directory, consecutive), encoding="utf-8")
    remember(history, day, record)
    return record, consecutive


def attach_to_allure(day: GameDay, record: Path, results: Path) -> Path:
    """An Allure result of its own for the game day, with the record attached."""
    results.mkdir(parents=True, exist_ok=True)
    files = AllureFileLogger(str(results))
    attachments = []
    for path in [record, *sorted(record.parent.glob("*-chart.png"))]:
        source = f"{uuid4()}-attachment{path.suffix}"
        files.report_attached_file(str(path), source)
        kind = "text/markdown" if path.suffix == ".md" else "image/png"
        attachments.append(Attachment(name=path.name, source=source, type=kind))
    result = TestResult(
        uuid=uuid4(),
        name=f"Game day: {day.feature}",
        fullName=f"gameday::{day.feature_file}",
        historyId=f"gameday::{day.feature_file}",
        status=Status.PASSED if day.passed else Status.FAILED,
        start=int(day.started_at * 1000),
        stop=int(day.ended_at * 1000),
        attachments=attachments,
        labels=[
            Label(name="epic", value="Game days"),
            Label(name="feature", value=day.feature),
            Label(name="tag", value="gameday"),
        ],
        links=[Link(type="link", url=str(record), name="record")],
    )
    files.report_result(result)
    return results
