"""The shape of a fault unit: its words, typed parameters, reach and experiments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar

import parse
from pydantic import BaseModel, ConfigDict, ValidationError

from shakeout.errors import ConfigError
from shakeout.placement import Placement

Variables = dict[str, str | float | int]


class Params(BaseModel):
    """A fault's Chaos Toolkit configuration, typed: one field per experiment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def variables(self) -> Variables:
        """The values handed to ``chaos run --var`` (floats as floats, ints as ints)."""
        return dict(self.model_dump())


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Reach:
    """The blast radius of one fault: which replicas it touches, in words."""

    replicas: list[str]
    description: str


class Fault(Generic[P]):
    """One fault word: subclass it once per word (see docs/architecture.md, "Adding a fault").

    ``phrase`` is the step text in :mod:`parse` format; :meth:`params` turns its parsed
    arguments into the typed experiment configuration; :meth:`reach` says which replicas of a
    target the fault touches; ``experiments`` names the Chaos Toolkit experiment per target
    kind (a kind missing from it cannot run the fault: a local target refuses a cluster-only
    fault in the plan). A target file's ``faults:`` entry replaces the experiment for that
    target. Every subclass with a ``word`` is registered when its module is imported.
    """

    word: ClassVar[str] = ""
    phrase: ClassVar[str]
    experiments: ClassVar[Mapping[str, str]]
    registry: ClassVar[dict[str, Fault[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.word:
            return
        if cls.word in Fault.registry:
            raise TypeError(f"fault word {cls.word!r} is defined twice")
        Fault.registry[cls.word] = cls()

    @property
    def cluster_only(self) -> bool:
        """Only cluster targets implement it (no experiment for the embedded platform)."""
        return "local" not in self.experiments

    def match(self, step: str) -> dict[str, Any] | None:
        """Arguments parsed from a step's text, or None when the step is not this phrase."""
        found = parse.parse(self.phrase, step)
        return dict(found.named) if isinstance(found, parse.Result) else None

    def params(self, args: Mapping[str, Any]) -> P:
        """The typed configuration from the step's arguments (the words' units turned into
        the experiment's: percent into a share, seconds into ``duration_s``)."""
        raise NotImplementedError

    def configure(self, args: Mapping[str, Any]) -> P:
        """:meth:`params`, with a bad value refused as a ConfigError naming the field."""
        try:
            return self.params(args)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"{self.word}: field {field}: {first['msg']}") from None

    def reach(self, placement: Placement, params: P) -> Reach:
        """Which replicas of the placement the fault touches, in words."""
        raise NotImplementedError

    def experiment(self, kind: str, overrides: Mapping[str, str]) -> str | None:
        """The experiment file for a target of ``kind`` (a target's ``faults:`` entry first),
        None when that kind has none."""
        return overrides.get(self.word) or self.experiments.get(kind)


def on(**experiments: str) -> Mapping[str, str]:
    """A fault's experiments by target kind: ``on(local="scenarios/x.json", kubernetes=...)``."""
    return MappingProxyType(dict(experiments))


def whole(placement: Placement, service: str, what: str) -> Reach:
    """Every replica of a service."""
    replicas = placement.service(service)
    return Reach([r for r, _ in replicas], f"all {len(replicas)} replicas of {service} ({what})")
