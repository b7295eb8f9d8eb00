"""Without nftables (or root) the packet-loss drill is skipped with the reason, never run half."""

from __future__ import annotations

from pathlib import Path

import pytest

from shakeout import session as session_module
from shakeout.platform import network
from shakeout.session import LocalSession
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parent.parent


def test_packet_loss_is_skipped_with_the_reason_without_nftables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network.shutil, "which", lambda name: None)
    reason = network.unavailable()
    assert reason is not None
    assert "apt-get install nftables" in reason
    target = load_target(ROOT / "targets" / "local.yaml")
    local = LocalSession(None, target)  # type: ignore[arg-type]  # reading a tag needs no platform
    monkeypatch.setattr(session_module.network, "unavailable", lambda: reason)
    loss = ROOT / "scenarios" / "zone_packet_loss.json"
    assert local.fault_skip_reason(loss) == f"{loss}: {reason}"
    assert local.fault_skip_reason(ROOT / "scenarios" / "zone_freeze.json") is None


def test_applying_packet_loss_without_nftables_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network.shutil, "which", lambda name: None)
    with pytest.raises(network.PlatformError, match="apt-get install nftables"):
        network.PacketLoss("shakeout-test").set("b", [1], 30)
