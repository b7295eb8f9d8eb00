"""``python -m shakeout.report``: build the Allure HTML report, install the pinned CLI.

python -m shakeout.report install-cli   # npm ci, when node_modules lacks the pinned CLI
python -m shakeout.report build [--results DIR] [--report DIR] [--strict]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from shakeout.report.build import HOW_TO, build_html, find_allure


def install_cli(root: Path) -> int:
    """Run ``npm ci`` at ``root`` unless the pinned CLI is already installed; 0 when usable."""
    lock = root / "package-lock.json"
    cli = root / "node_modules" / ".bin" / "allure"
    if cli.exists() and cli.stat().st_mtime >= lock.stat().st_mtime:
        print(f"Allure CLI already installed: {cli}")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print(f"npm not found, the Allure CLI is not installed; {HOW_TO}")
        return 0  # the drills run without it; the HTML report is what is missing
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=root, timeout=600, check=False
    )
    if proc.returncode != 0:
        print(f"npm ci failed (exit {proc.returncode}); {HOW_TO}", file=sys.stderr)
        return proc.returncode
    cli.touch(exist_ok=True)  # newer than the lock file: the next call skips npm
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m shakeout.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install-cli", help="npm ci the pinned Allure CLI when it is missing")
    build = sub.add_parser("build", help="build reports/allure-report with trend history")
    build.add_argument("--results", type=Path, default=Path("reports/allure-results"))
    build.add_argument("--report", type=Path, default=Path("reports/allure-report"))
    build.add_argument(
        "--strict", action="store_true", help="exit 1 when the CLI or Java is missing"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.command == "install-cli":
        return install_cli(root)
    result = build_html(args.results, args.report, root)
    print(result.message)
    if result.built:
        return 0
    missing = find_allure(root) is None or shutil.which("java") is None
    return 1 if (args.strict or not missing) else 0


if __name__ == "__main__":
    raise SystemExit(main())
