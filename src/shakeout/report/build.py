"""Building the Allure HTML report with the pinned Allure command line, keeping its history.

The CLI is the npm package ``allure-commandline`` pinned in the repository's package.json and
package-lock.json (``npm ci`` puts it in ``node_modules/.bin/allure``); it needs Java. Allure
draws its trend graphs from a ``history/`` folder that each build writes into the report and
reads back from the results: it is copied to ``reports/allure-history/`` after each build and
into the results before the next one, so wiping the report loses no nights; rebuilding the same
results adds no night either.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HOW_TO = (
    "to build the HTML report install Node.js (npm) and Java 17+, run `npm ci` at the "
    "repository root (it installs the pinned allure-commandline), then `tox -e report` "
    "(or `python -m shakeout.report build`)"
)


@dataclass(frozen=True)
class BuildResult:
    """What a build did: the report's index, or why there is none and how to get one."""

    index: Path | None
    message: str

    @property
    def built(self) -> bool:
        """True when the HTML report was written."""
        return self.index is not None


def find_allure(root: Path) -> Path | None:
    """The pinned Allure CLI under ``node_modules/.bin``, else ``$SHAKEOUT_ALLURE``, else None.

    A system-wide ``allure`` on PATH is not used: its version would not be the pinned one.
    """
    override = os.environ.get("SHAKEOUT_ALLURE")
    if override:
        return Path(override) if Path(override).exists() else None
    local = root / "node_modules" / ".bin" / "allure"
    return local if local.exists() else None


def missing_tools(root: Path) -> list[str]:
    """What the build still needs on this machine (empty when it can run)."""
    missing = []
    if find_allure(root) is None:
        missing.append("the pinned Allure CLI (node_modules/.bin/allure: run `npm ci`)")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing.append("Java (the Allure CLI runs on a JVM)")
    return missing


BUILD_MARKER = ".shakeout-results"  # in the kept history: which results it was built from


def _results_key(results: Path) -> str:
    """Identifies one set of results (Allure names each result file by a fresh uuid)."""
    names = sorted(p.name for p in results.glob("*-result.json"))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _copy_tree(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)


def build_html(
    results: Path,
    report: Path,
    root: Path,
    history: Path | None = None,
    timeout_s: float = 300.0,
) -> BuildResult:
    """Generate ``report/index.html`` from ``results``; never raises for a missing tool.

    ``history`` (default ``<report's parent>/allure-history``) is the kept trend history.
    """
    history = history if history is not None else report.parent / "allure-history"
    if not results.is_dir() or not any(results.glob("*-result.json")):
        return BuildResult(None, f"no Allure results in {results}: run the drills first")
    missing = missing_tools(root)
    allure = find_allure(root)
    if missing or allure is None:
        return BuildResult(None, f"HTML report not built: missing {'; '.join(missing)}; {HOW_TO}")
    # The trend graphs read results/history: last build's history goes in first. Rebuilding
    # the same results (tox -e report after tox -e drill) must not add a second point for the
    # same night, so it starts from the history as it was before that night's first build.
    key = _results_key(results)
    marker = history / BUILD_MARKER
    same_night = marker.exists() and marker.read_text(encoding="utf-8") == key
    before = history.with_name(history.name + "-before")
    if not same_night:
        shutil.rmtree(before, ignore_errors=True)
        _copy_tree(history, before)
    shutil.rmtree(results / "history", ignore_errors=True)
    _copy_tree(before, results / "history")
    (results / "history" / BUILD_MARKER).unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            [str(allure), "generate", str(results), "-o", str(report), "--clean"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return BuildResult(None, f"allure generate did not finish in {timeout_s:.0f} s")
    except OSError as exc:
        return BuildResult(None, f"cannot run {allure}: {exc}; {HOW_TO}")
    index = report / "index.html"
    if proc.returncode != 0 or not index.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return BuildResult(
            None, f"allure generate failed (exit {proc.returncode}): " + " | ".join(tail)
        )
    if (report / "history").is_dir():
        shutil.rmtree(history, ignore_errors=True)
        _copy_tree(report / "history", history)
        (history / BUILD_MARKER).write_text(key, encoding="utf-8")
    return BuildResult(index, f"Allure report: {index}")
