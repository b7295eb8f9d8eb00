"""``shakeout history import`` and ``shakeout report weekly``: their options and work."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from rich.console import Console

from shakeout import history
from shakeout.errors import ConfigError
from shakeout.report.digest import write_digest

_console = Console(soft_wrap=True, highlight=False)


def _import(args: argparse.Namespace) -> int:
    for folder in args.folders:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such folder (give run folders or reports/runs)")
    db = history.connect(args.db)
    try:
        added, known, unjudged = history.import_runs(db, args.folders)
    finally:
        db.close()
    _console.print(
        f"{args.db}: {added} run(s) added, {known} already there, {unjudged} without verdicts "
        "(left out)"
    )
    return 0


def _night(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date, YYYY-MM-DD") from None


def _weekly(args: argparse.Namespace) -> int:
    if not args.db.is_file():
        raise ConfigError(
            f"{args.db}: no results history yet (drill runs write it; `shakeout history import "
            "reports/runs` adds earlier runs)"
        )
    try:
        digest = write_digest(args.db, args.out, args.nights, args.until)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for line in (digest.markdown, digest.html):
        _console.print(f"wrote {line}")
    return 0


def add_parsers(commands: Any) -> None:
    """Add ``history`` and ``report`` to the ``shakeout`` command."""
    hist = commands.add_parser("history", help="the results history across nights (SQLite)")
    actions = hist.add_subparsers(dest="action", required=True)
    imp = actions.add_parser("import", help="add run folders to the results history, once each")
    imp.add_argument("folders", nargs="+", type=Path, help="run folders, or reports/runs")
    imp.add_argument("--db", type=Path, default=history.default_db(), help="(default: %(default)s)")
    imp.set_defaults(handler=_import)
    report = commands.add_parser("report", help="reports across runs")
    kinds = report.add_subparsers(dest="kind", required=True)
    weekly = kinds.add_parser("weekly", help="the weekly digest of the last nights (md + HTML)")
    weekly.add_argument("--nights", type=int, default=7, help="nights covered (default: 7)")
    weekly.add_argument(
        "--until", type=_night, default=None, help="last night covered (default: the newest)"
    )
    weekly.add_argument(
        "--db", type=Path, default=history.default_db(), help="(default: %(default)s)"
    )
    weekly.add_argument(
        "--out", type=Path, default=Path("reports/weekly"), help="(default: %(default)s)"
    )
    weekly.set_defaults(handler=_weekly)
