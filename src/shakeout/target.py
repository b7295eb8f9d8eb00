"""A target file, loaded once into the model its ``kind`` names, and the session it opens.

This is the one place that knows the kinds: :func:`load_target_file` reads ``kind: local``
(the embedded platform, :class:`~shakeout.topology.LocalTarget`) or ``kind: kubernetes``
(:class:`~shakeout.k8s.target.KubernetesTarget`), and :func:`open_session` gives the engine a
:class:`~shakeout.session.TargetSession` for either. Both models give their
:class:`~shakeout.placement.Placement` for plans and blast radius.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import yaml

from shakeout._yaml import load_yaml_model
from shakeout.errors import PlatformError
from shakeout.k8s.session import KubernetesSession
from shakeout.k8s.target import KubernetesTarget
from shakeout.platform import lifecycle
from shakeout.session import LocalSession, TargetSession
from shakeout.topology import LocalTarget

Target = LocalTarget | KubernetesTarget


def load_target_file(path: Path | str) -> Target:
    """Read a target file of either kind; errors name the file, line and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        data = None  # load_yaml_model reports an unreadable or invalid file with its location
    if isinstance(data, dict) and data.get("kind") == "kubernetes":
        return load_yaml_model(path, KubernetesTarget, "target file")
    return load_yaml_model(path, LocalTarget, "target file")


@contextmanager
def _local(
    path: Path, spec: LocalTarget, start: bool, allow_production: bool
) -> Iterator[TargetSession]:
    if not start:
        state = lifecycle.running(spec.name)
        if state is None:
            raise PlatformError(
                f"platform {spec.name!r} is not running: start it with "
                f"'shakeout platform up --target {path}'"
            )
        yield LocalSession(state, spec)
        return
    state, started = lifecycle.up(path, owner_pid=os.getpid())
    try:
        yield LocalSession(state, spec)
    finally:
        if started:
            lifecycle.down(state.target)


@contextmanager
def _kubernetes(
    path: Path, spec: KubernetesTarget, start: bool, allow_production: bool
) -> Iterator[TargetSession]:
    cluster = KubernetesSession(path, allow_production=allow_production)
    try:
        os.environ.update(cluster.chaos_environment())  # chaos run reads the context from it
        yield cluster
    finally:
        cluster.close()


_OPENERS: dict[str, Callable[..., AbstractContextManager[TargetSession]]] = {
    "local": _local,
    "kubernetes": _kubernetes,
}


def open_session(
    path: Path | str,
    spec: Target | None = None,
    *,
    start: bool = True,
    allow_production: bool = False,
) -> AbstractContextManager[TargetSession]:
    """The target's session. ``start``: the embedded platform is started when it is not
    running (and stopped at the end if this started it); otherwise it must be running. A
    Kubernetes target is checked against its allowlists first (``allow_production`` lets a
    production-looking context through) and its port-forward is closed at the end. ``spec``:
    the target file already loaded."""
    spec = load_target_file(path) if spec is None else spec
    return _OPENERS[spec.kind](Path(path), spec, start, allow_production)
