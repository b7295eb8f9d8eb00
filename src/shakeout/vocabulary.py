"""The words of the step vocabulary that name things in files: profiles, journeys, phases, shapes.

The step definitions (``steps/drill_steps.py``) parse these phrases, and the check that runs
before anything starts (:mod:`shakeout.check`) reads the same phrases in the features, so a
name a step would only find wrong after the platform started, load ran and a fault was
injected is refused first.
"""

from __future__ import annotations

import re

from shakeout.errors import ConfigError, did_you_mean

PHASES = ("drill", "baseline", "fault", "recovery")

# The load step: `load of 20 requests per second from the "steady" profile`, optionally with
# the shape's settings: `..., with at 10 s, window 5 s, factor 3`.
LOAD_STEP = re.compile(
    r"(?P<model>open-model |closed-model |)load of (?P<rate>\d+) requests per second"
    r'(?P<poisson> with Poisson arrivals|) from the "(?P<profile>[^"]+)" profile'
    r"(?:, with (?P<shape>.+))?$"
)
JOURNEY_REF = re.compile(r'the "(?P<journey>[^"]+)" journey\b')
PHASE_REF = re.compile(r'^during the (?P<phase>\S+) the "')

# Shape settings a feature may give (see docs/load.md): the word, the load option it sets,
# whether it is a time in seconds.
SHAPE_SETTINGS = {
    "at": ("at_s", True),  # spike, surge: when it starts
    "window": ("window_s", True),  # spike: how long it lasts
    "factor": ("factor", False),  # spike, surge: how many times the base rate
    "period": ("period_s", True),  # diurnal: how long one day lasts
    "ramp": ("ramp_s", True),  # ramp: time to the full rate
}
_SETTING = re.compile(r"^(?P<word>[a-z]+) (?P<value>\d+(?:\.\d+)?)(?P<unit> ?s|x)?$")


def shape_settings(text: str | None) -> dict[str, float]:
    """``at 10 s, window 5 s and factor 3`` as load options (``{"at_s": 10, ...}``)."""
    if not text:
        return {}
    settings: dict[str, float] = {}
    for part in re.split(r",\s*|\s+and\s+", text.strip()):
        found = _SETTING.match(part.strip())
        if found is None:
            raise ConfigError(
                f"shape setting {part.strip()!r} is not '<name> <number>[ s]' "
                f"(settings: {', '.join(SHAPE_SETTINGS)})"
            )
        word = found["word"]
        if word not in SHAPE_SETTINGS:
            raise ConfigError(
                f"unknown shape setting {word!r} (settings: {', '.join(SHAPE_SETTINGS)})"
                f"{did_you_mean(word, SHAPE_SETTINGS)}"
            )
        option, _seconds = SHAPE_SETTINGS[word]
        settings[option] = float(found["value"])
    return settings
