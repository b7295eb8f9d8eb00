"""A running embedded platform shared by the tests of one module, and its control client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _support import LOCAL, platform_up

from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """``targets/local.yaml`` up in an isolated runtime folder, from the repository root."""
    with platform_up(LOCAL, tmp_path_factory.mktemp("runtime")) as up:
        yield up


@pytest.fixture(scope="class")
def state(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformState]:
    """The class's platform: its ``target`` attribute names the target file."""
    with platform_up(request.cls.target, tmp_path_factory.mktemp("runtime")) as up:
        yield up


@pytest.fixture
def client(platform: PlatformState) -> Iterator[lifecycle.PlatformClient]:
    """A control API client of the module's platform."""
    with lifecycle.PlatformClient(platform) as c:
        yield c
