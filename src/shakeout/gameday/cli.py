"""``shakeout gameday``: its options (the console is :mod:`shakeout.gameday.console`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from shakeout.gameday.console import GameDayConsole, Options


def _run(args: argparse.Namespace) -> int:
    return GameDayConsole(
        Options(
            feature=args.feature,
            target=args.target,
            select=args.select,
            auto=args.auto,
            large=args.large,
            no_color=args.no_color,
            page=not args.no_page,
            port=args.port,
            reports=Path(os.environ.get("SHAKEOUT_REPORTS_DIR", "reports")),
            alluredir=args.alluredir,
            attach=args.attach,
        )
    ).run()


def add_parser(commands: Any) -> None:
    """Add ``gameday`` to the ``shakeout`` command's subcommands."""
    parser = commands.add_parser(
        "gameday",
        help="run a feature live in front of a room: plan, go / no-go, step mode, hold, "
        "abort, notes, a read-only page and the game-day record",
    )
    parser.add_argument(
        "feature", type=Path, nargs="?", default=None, help="the feature file to run"
    )
    parser.add_argument(
        "--attach",
        type=Path,
        metavar="DIR",
        default=None,
        help="drive a drill started with `pytest FEATURE --gameday DIR` instead of starting one",
    )
    parser.add_argument(
        "-k", dest="select", metavar="EXPR", help="scenarios to run (pytest's -k expression)"
    )
    parser.add_argument(
        "--target",
        type=Path,
        default=Path(os.environ.get("SHAKEOUT_TARGET_FILE", "targets/local.yaml")),
        help="target file (default: %(default)s)",
    )
    parser.add_argument(
        "--auto", action="store_true", help="run through: no go is asked before each fault"
    )
    parser.add_argument(
        "--large", action="store_true", help="the projector layout: fewer, larger items"
    )
    parser.add_argument(
        "--no-color", action="store_true", help="no colour (NO_COLOR in the environment too)"
    )
    parser.add_argument("--no-page", action="store_true", help="serve no page for the room")
    parser.add_argument(
        "--port", type=int, default=0, help="port of the room's page on 127.0.0.1 (default: any)"
    )
    parser.add_argument(
        "--alluredir",
        type=Path,
        default=Path("reports/allure-results"),
        help="Allure results: the drills' and the game day's own, with its record "
        "(default: %(default)s)",
    )
    parser.set_defaults(handler=_run)
