"""A running embedded platform shared by the tests of one module, and its control client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "targets" / "local.yaml"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """``targets/local.yaml`` up in an isolated runtime folder, from the repository root."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHAKEOUT_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
        mp.chdir(ROOT)
        state, started = lifecycle.up(LOCAL, owner_pid=os.getpid())
        assert started
        try:
            yield state
        finally:
            lifecycle.down(state.target)


@pytest.fixture
def client(platform: PlatformState) -> Iterator[lifecycle.PlatformClient]:
    """A control API client of the module's platform."""
    with lifecycle.PlatformClient(platform) as c:
        yield c
