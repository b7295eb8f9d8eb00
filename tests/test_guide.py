"""docs/your-service.md, run as a new user would: every ``$`` command of the guide, in order.

The guide's commands run in a fresh folder that looks like a ShakeOut checkout (the project's
own files, linked), with this test environment's ``shakeout``, ``pytest`` and ``python`` on
PATH. httpbin comes from PyPI into its own virtualenv, as the guide says. A command marked
``# fails`` must fail; every other must succeed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "your-service.md"
# What a checkout has that the guide's commands read.
CHECKOUT = ("steps", "conftest.py", "pyproject.toml", "loadprofiles", "scenarios", "targets")

pytestmark = pytest.mark.drill


def guide_commands() -> list[tuple[str, bool]]:
    """Each ``$`` command of the guide's console blocks, and whether it must fail."""
    commands = []
    in_console = False
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            continue
        if in_console and line.startswith("$ "):
            command, _, comment = line[2:].partition("    #")
            commands.append((command.strip(), comment.strip().startswith("fails")))
    return commands


def quoted_outputs() -> list[str]:
    """The plain code blocks (a fence with no language): outputs the guide shows."""
    blocks: list[str] = []
    current: list[str] | None = None
    opened = False
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if opened:
                if current is not None:
                    blocks.append("\n".join(current))
                opened, current = False, None
            else:
                opened, current = True, ([] if line.strip() == "```" else None)
        elif current is not None:
            current.append(line)
    return blocks


def _checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    for name in CHECKOUT:
        (work / name).symlink_to(ROOT / name)
    return work


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    # tox constrains its own installs (PIP_CONSTRAINT): a user's shell does not, and the
    # service's virtualenv is not ShakeOut's (httpbin needs greenlet < 3 on Python 3.11).
    inherited = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    return {
        **inherited,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "SHAKEOUT_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_guide_has_the_commands_it_promises() -> None:
    commands = guide_commands()
    assert [c for c, _ in commands if c.startswith("shakeout init")], commands
    assert [c for c, fails in commands if fails and "fragile" in c], "no negative control"
    assert [c for c, fails in commands if not fails and c.startswith("pytest steps")]


def test_the_guide_runs_from_nothing_to_a_green_drill_and_a_failing_control(
    tmp_path: Path, no_leftovers: None
) -> None:
    work, env = _checkout(tmp_path), _env(tmp_path)
    for command, must_fail in guide_commands():
        result = _run(command, work, env)
        output = result.stdout + result.stderr
        if must_fail:
            assert result.returncode != 0, f"{command} passed:\n{output[-3000:]}"
            assert "SLO breached: " in output, output[-3000:]
        else:
            assert result.returncode == 0, f"{command} failed:\n{output[-3000:]}"
        if command.startswith("pytest steps") and not must_fail:
            assert re.search(r"\b2 passed\b", output), output[-2000:]
    # The negative control's message has the shape the guide shows.
    shown = next(q for q in quoted_outputs() if q.startswith("SLO breached"))
    pattern = re.sub(r"\d+(\\\.\d+)?", r"[\\d.]+", re.escape(shown.strip()))
    pattern = pattern.replace("get", r"\w+", 1)
    assert re.search(pattern, output), output[-3000:]


def test_the_mistake_the_guide_shows_is_caught_with_its_message(tmp_path: Path) -> None:
    work, env = _checkout(tmp_path), _env(tmp_path)
    (init,) = [c for c, _ in guide_commands() if c.startswith("shakeout init")]
    # The service's interpreter stands in for httpbin's virtualenv (the check looks for it).
    (work / ".httpbin" / "bin").mkdir(parents=True)
    (work / ".httpbin" / "bin" / "python").symlink_to(sys.executable)
    assert _run(init, work, env).returncode == 0
    feature = work / "httpbin" / "httpbin.feature"
    text = feature.read_text(encoding="utf-8")
    feature.write_text(text.replace('"get" journey', '"gett" journey', 1), encoding="utf-8")
    result = _run("shakeout validate --target httpbin/httpbin.yaml httpbin/", work, env)
    assert result.returncode == 2
    shown = next(q for q in quoted_outputs() if q.startswith("error:"))
    assert [line.strip() for line in shown.splitlines()] == [
        line.strip() for line in result.stderr.splitlines()
    ], result.stderr
