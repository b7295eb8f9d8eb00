"""Files Allure reads from its results folder: ``categories.json``, ``environment.properties``
and ``executor.json``; and the tag conventions that become Allure labels and links.

Tag conventions (feature or scenario tags):

- ``@severity:<level>``: the Allure severity (blocker, critical, normal, minor, trivial);
- ``@runbook:<url>``: a link named "runbook" on the drill (several allowed);
- ``@epic:<name>``: the scenario family, when the plain family tag is not what you want;
  otherwise the family is the feature's plain tag other than the suite tags (quick, nightly,
  gameday), e.g. ``@crash_loop`` -> "crash loop", and failing that the feature file's name.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from shakeout.errors import ConfigError

SEVERITIES = ("blocker", "critical", "normal", "minor", "trivial")
SUITE_TAGS = frozenset({"quick", "nightly", "gameday", "drill"})
KEYED_TAGS = ("severity", "runbook", "epic")

# Checked in this order; Allure files a result under the first category that matches. The
# exception's class name is in the message Allure records ("shakeout.errors.SLOBreach: ...").
CATEGORIES: list[dict[str, object]] = [
    {
        "name": "Stop-condition abort",
        "description": "A stop condition aborted a fault (rollbacks played): the target "
        "degraded past the abort threshold during the fault.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": r"(?s).*(StopConditionAbort|aborted by stop condition).*",
    },
    {
        "name": "Fault not applied or rollback failed",
        "description": "Chaos Toolkit could not apply a fault or undo it: check the journal.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": r"(?s).*\bFaultError\b.*",
    },
    {
        "name": "Target unreachable",
        "description": "The target's control API or gateway did not answer.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": r"(?s).*(PlatformUnreachable|ConnectError|ConnectTimeout).*",
    },
    {
        "name": "Inconclusive measurement",
        "description": "Too few requests to judge an objective: neither pass nor a regression.",
        "matchedStatuses": ["failed"],
        # Only when nothing was breached: one breach among inconclusive ones is a regression.
        "messageRegex": r"(?s)(?!.*SLO breached).*SLO inconclusive.*",
    },
    {
        "name": "SLO breach (resilience regression)",
        "description": "The target did not meet an objective: a resilience regression.",
        "matchedStatuses": ["failed"],
        "messageRegex": r"(?s).*(SLOBreach|SLO breached|objective\(s\) breached).*",
    },
    {
        "name": "Harness error",
        "description": "The harness itself failed (configuration, load generator, a crashed "
        "step): not a verdict on the target.",
        "matchedStatuses": ["broken", "failed"],
    },
]

# The same classification for the terminal table and the scorecard, from the exception class.
_CLASS_CATEGORY = (
    ("StopConditionAbort", "stop-condition abort"),
    ("FaultError", "fault not applied or rollback failed"),
    ("PlatformUnreachable", "target unreachable"),
    ("ConnectError", "target unreachable"),
    ("SLOBreach", "SLO breach"),
)


def category_of(exc_type_names: list[str], message: str) -> str:
    """Category of a failed drill from its exception's class names (MRO) and message."""
    if "SLO inconclusive" in message and "SLO breached" not in message:
        return "inconclusive"
    for cls, name in _CLASS_CATEGORY:
        if cls in exc_type_names:
            return name
    return "harness error"


def parse_keyed_tag(tag: str) -> tuple[str, str] | None:
    """``("severity", "critical")`` for ``severity:critical``; None for a plain tag.

    Raises ConfigError for an unknown severity or an empty value.
    """
    key, sep, value = tag.partition(":")
    if not sep or key not in KEYED_TAGS:
        return None
    if not value:
        raise ConfigError(f"tag @{tag}: empty value (write @{key}:<value>)")
    if key == "severity" and value not in SEVERITIES:
        raise ConfigError(f"tag @{tag}: unknown severity {value!r}; use one of {SEVERITIES}")
    return key, value


def family(tags: set[str], feature_file: str) -> str:
    """The scenario family (Allure epic) by the module's tag convention."""
    explicit = sorted(
        v for t in tags if (kv := parse_keyed_tag(t)) and kv[0] == "epic" for v in [kv[1]]
    )
    if explicit:
        return explicit[0]
    plain = sorted(t for t in tags if ":" not in t and t not in SUITE_TAGS)
    if plain:
        return plain[0].replace("_", " ")
    return Path(feature_file).stem.replace("_", " ")


def write_categories(results: Path) -> Path:
    """Write ``categories.json`` into the Allure results folder."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / "categories.json"
    path.write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")
    return path


def git_sha(root: Path) -> str:
    """The commit the harness runs from (with ``-dirty`` when the tree has changes)."""
    git = shutil.which("git")
    if git is None:
        return "unknown (git not installed)"
    try:
        out = subprocess.run(
            [git, "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return out.stdout.strip()


TOOLS = (
    "shakeout",
    "pytest",
    "pytest-bdd",
    "allure-pytest-bdd",
    "locust",
    "chaostoolkit",
    "chaostoolkit-lib",
    "httpx",
    "matplotlib",
)


def tool_versions() -> dict[str, str]:
    """Versions of the Python tools a drill uses, from the installed distributions."""
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _escape(text: str) -> str:
    # .properties syntax: backslash, separators and line breaks must be escaped.
    return re.sub(r"([\\:=#!])", r"\\\1", text).replace("\n", "\\n")


def environment(target: str, target_file: str, root: Path) -> dict[str, str]:
    """The key/values of the report's Environment widget."""
    env = {
        "target": target,
        "target.file": target_file,
        "git.sha": git_sha(root),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
    }
    env.update({f"version.{k}": v for k, v in tool_versions().items()})
    if ci := os.environ.get("CI"):
        env["ci"] = ci
    return env


def write_environment(results: Path, values: dict[str, str]) -> Path:
    """Write ``environment.properties`` into the Allure results folder."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / "environment.properties"
    body = "".join(f"{_escape(k)}={_escape(v)}\n" for k, v in values.items())
    path.write_text(body, encoding="utf-8")
    return path


def write_executor(results: Path, name: str, build_name: str) -> Path:
    """Write ``executor.json``: names the run in the report's Executors widget and trend."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / "executor.json"
    path.write_text(
        json.dumps({"name": name, "type": "shakeout", "buildName": build_name}, indent=2),
        encoding="utf-8",
    )
    return path
