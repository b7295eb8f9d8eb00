"""Generate ``docs/steps.md``, the step vocabulary, from the step definitions themselves.

``python -m steps.docs`` rewrites the page; ``python -m steps.docs --check`` exits non-zero
when the page is stale (the tests run the same check). The page is built from what pytest-bdd
registered: each step's pattern, its typed parameters and its docstring, so it cannot drift
from the code. pytest-bdd has no documentation generator, hence this module.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pytest_bdd import parsers
from pytest_bdd.steps import step_function_context_registry

from shakeout.faults import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "steps.md"

# Types of parse-format fields and what a facilitator types for them.
FORMAT_TYPES = {"d": "whole number", "g": "number", "f": "number", "w": "word", "": "text"}
# Regular-expression groups the vocabulary uses, in words.
REGEX_TYPES = {
    r"\d+": "whole number",
    r"[\w-]+": "word",
    r'[^"]+': "a name",
    r".+": "settings, e.g. `at 10 s, window 5 s, factor 3`",
}

SECTIONS = {
    "given": "Setting up: target, load, stop conditions, baseline",
    "when": "Faults and waiting",
    "then": "Expectations: latency, errors, availability, burn, recovery, data, rollouts",
}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a step: its name and what may be written there."""

    name: str
    kind: str


@dataclass(frozen=True)
class StepDoc:
    """One step as the page shows it."""

    keyword: str
    text: str
    parameters: list[Parameter]
    doc: str


def _from_format(pattern: str) -> tuple[str, list[Parameter]]:
    params: list[Parameter] = []

    def field(match: re.Match[str]) -> str:
        name, _, spec = match.group(1).partition(":")
        params.append(Parameter(name, FORMAT_TYPES.get(spec, spec)))
        return f"<{name}>"

    return re.sub(r"{([^}]+)}", field, pattern), params


def _from_regex(pattern: str) -> tuple[str, list[Parameter]]:
    params: list[Parameter] = []

    def group(match: re.Match[str]) -> str:
        name, body = match.group(1), match.group(2)
        if body in REGEX_TYPES:
            params.append(Parameter(name, REGEX_TYPES[body]))
            return f"<{name}>"
        raw = body.split("|")
        choices = [c.strip() for c in raw]
        words = " or ".join(f'"{c}"' for c in choices if c)
        params.append(Parameter(name, words + (", or nothing" if "" in choices else "")))
        if "" not in choices:
            return f"<{name}>"
        # An optional group carries its own space; keep it on the same side.
        given = [c for c in raw if c]
        if all(c.endswith(" ") for c in given):
            return f"[{name}] "
        if all(c.startswith(" ") for c in given):
            return f" [{name}]"
        return f"[{name}]"

    text = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", group, pattern)
    text = re.sub(r"\(\?:([^()]*)\)\?", r"[\1]", text)  # an optional part: [, with <shape>]
    return text.replace("\\", "").strip("^$ "), params


def _experiments() -> dict[str, str]:
    """Fault word -> what the embedded platform's experiment does (its title and file)."""
    found: dict[str, str] = {}
    for word, fault in REGISTRY.items():
        path = fault.experiments.get("local")
        if path is None:
            found[word] = "Cluster targets only (the embedded platform has no such fault)."
            continue
        experiment = json.loads((ROOT / path).read_text(encoding="utf-8"))
        found[word] = f"On the embedded platform: {experiment['title']} (`{path}`)."
    return found


def collect() -> list[StepDoc]:
    """Every step the drill library registers, in definition order."""
    import steps.drill_steps  # noqa: F401  (registers the steps)

    experiments = _experiments()
    found: list[StepDoc] = []
    seen: set[tuple[str, str]] = set()
    for context in step_function_context_registry.values():
        if context.step_func.__module__ != "steps.drill_steps":
            continue  # pytest-bdd's own steps (such as its pdb `trace`)
        parser = context.parser
        if isinstance(parser, parsers.re):
            text, params = _from_regex(parser.name)
        else:
            text, params = _from_format(parser.name)
        keyword = context.type or "step"
        if (keyword, text) in seen:
            continue
        seen.add((keyword, text))
        doc = inspect.getdoc(context.step_func) or ""
        word = getattr(context.step_func, "fault_word", None)
        if word in experiments:
            doc += " " + experiments[word]
        found.append(StepDoc(keyword, text, params, " ".join(doc.split())))
    return found


def _tags() -> list[tuple[str, str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    markers = config["tool"]["pytest"]["ini_options"]["markers"]
    return [tuple(m.split(": ", 1)) for m in markers if not m.startswith("drill:")]


def render() -> str:
    """The whole page."""
    lines = [
        "# Step vocabulary",
        "",
        "<!-- Generated by `python -m steps.docs` (tox -e docs) from steps/drill_steps.py;",
        "     do not edit by hand: a test fails when this page is stale. -->",
        "",
        "A drill is a Gherkin scenario in `features/`. It sets up load, names faults in plain",
        "words, and states what must hold. Words in `<angle brackets>` are yours to fill in;",
        "words in `[square brackets]` are optional. Every expectation is judged from the",
        "per-request data of the run, per phase (baseline, fault, recovery) read from the Chaos",
        "Toolkit journal, and kept in the run's `verdicts.json`.",
        "",
        "```gherkin",
        "@zone @quick",
        "Feature: Zone failure",
        "  Scenario: Zone b goes down and traffic fails over",
        "    Given the target is up and every replica is ready",
        '    And load of 40 requests per second from the "steady" profile',
        "    And a baseline of 3 seconds",
        '    When zone "b" goes down for 6 seconds',
        "    And the target has 3 seconds to recover",
        '    Then the "checkout" journey\'s error rate stays below 0.5%',
        '    And the "checkout" journey recovers within 5 seconds of the fault\'s start',
        "    And no acknowledged order is lost or duplicated",
        "    And every objective of the SLO file holds",
        "```",
        "",
        "Journeys of the shop's load profiles: `browse`, `product`, `cart`, `checkout`.",
        "Load profiles: the files in `loadprofiles/` (`steady`, `ramp`, `spike`, `surge`,",
        "`diurnal`). Phases: `baseline`, `fault`, `recovery`. A step that is not on this page",
        "is refused before anything runs, with the feature file and line.",
        "",
    ]
    steps = collect()
    for keyword, title in SECTIONS.items():
        lines += [f"## {title}", ""]
        for step in (s for s in steps if s.keyword == keyword):
            lines += [f"### {keyword.capitalize()} {step.text}", ""]
            if step.doc:
                lines += [step.doc, ""]
            if step.parameters:
                lines += ["| parameter | what to write |", "|---|---|"]
                lines += [f"| `{p.name}` | {p.kind} |" for p in step.parameters]
                lines.append("")
    lines += [
        "## Fault words",
        "",
        "Each fault step names a fault word. Its fault unit (`src/shakeout/faults/`) holds the",
        "phrase, the typed values it passes to the experiment, the replicas it reaches and the",
        "experiment per target kind; a target file's `faults:` may name its own experiment",
        "instead, so a feature runs unchanged on another target.",
        "",
        "| fault word | step | runs on |",
        "|---|---|---|",
    ]
    for word, fault in REGISTRY.items():
        text, _ = _from_format(fault.phrase)
        lines.append(f"| `{word}` | {text} | {', '.join(fault.experiments)} |")
    lines += ["", "## Tags", "", "| tag | meaning |", "|---|---|"]
    lines += [f"| `@{name}` | {meaning} |" for name, meaning in _tags()]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the page, or with ``--check`` say whether it is current."""
    parser = argparse.ArgumentParser(prog="python -m steps.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/steps.md is stale")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != page:
            print(f"{PAGE} is stale: run `tox -e docs` (python -m steps.docs)", file=sys.stderr)
            return 1
        print(f"{PAGE} is current")
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE} ({len(page.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
