"""Secret hygiene: the shared key lives in a private folder outside ``reports/``, which goes
when the platform stops, and no key (nor the control token) ever reaches a run's output.

The unit tests check the store's folder (modes, owner, links) and its removal; the platform
tests check every way a platform stops; the whole-run test runs the key-rotation drill as a
user does (``pytest steps``, with Allure results and JUnit XML, the runtime folder where it is
by default: ``reports/platform``), collects every key the store issued while it ran, then reads
every file the run left in ``reports/`` for any of them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _support import LOCAL, ROOT

from shakeout._process import wait_for
from shakeout.contracts import SharedKeyDocument, key_id
from shakeout.errors import PlatformError
from shakeout.platform import lifecycle
from shakeout.platform.secrets import (
    POINTER_FILENAME,
    SECRET_FILENAME,
    open_store,
    private_root,
    remove_store,
    store_dir,
)
from shakeout.platform.state import pid_alive, state_dir, write_private
from shakeout.platform.supervisor import Supervisor
from shakeout.topology import load_target


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``XDG_RUNTIME_DIR`` of the test's own (as a login manager makes one), so the
    stores the test makes are where it can see them, and nowhere else."""
    path = tmp_path / "xdg"
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


def leaks(root: Path, secrets: Iterable[str]) -> list[str]:
    """``file: key id`` for every file under ``root`` (any depth, text or binary, links not
    followed) that holds one of ``secrets``, as it is or base64-encoded. Names keys by id only,
    so a failure message leaks nothing either."""
    needles: dict[bytes, str] = {}
    for secret in secrets:
        raw = secret.encode()
        needles[raw] = key_id(secret)
        needles[base64.b64encode(raw)] = f"{key_id(secret)} (base64)"
    found = []
    for folder, _, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {n}" for k, n in needles.items() if k in data]
    return sorted(found)


# -- the store's folder ------------------------------------------------------------------------


def test_the_store_is_private_and_outside_the_runtime_folder(tmp_path: Path, xdg: Path) -> None:
    runtime = tmp_path / "reports" / "platform" / "local"
    old = os.umask(0)  # the loosest umask: the modes below must not depend on it
    try:
        key_file = open_store(runtime)
        write_private(key_file, SharedKeyDocument("k" * 32).dumps())
    finally:
        os.umask(old)
    assert key_file.parent == store_dir(runtime)
    assert key_file.parent.parent == xdg / "shakeout"
    assert not key_file.is_relative_to(tmp_path / "reports")
    assert _mode(xdg / "shakeout") == 0o700
    assert _mode(key_file.parent) == 0o700
    assert _mode(key_file) == 0o600
    assert os.lstat(key_file.parent).st_uid == os.getuid()
    pointer = json.loads((runtime / POINTER_FILENAME).read_text(encoding="utf-8"))
    assert pointer == {"store": str(key_file.parent), "pid": os.getpid()}  # where, never what
    assert leaks(tmp_path / "reports", ["k" * 32]) == []

    assert remove_store(runtime)
    assert not key_file.parent.exists()
    assert not (runtime / POINTER_FILENAME).exists()
    assert list((xdg / "shakeout").iterdir()) == []


def test_two_runtime_folders_never_share_a_store(tmp_path: Path, xdg: Path) -> None:
    one, two = tmp_path / "one" / "local", tmp_path / "two" / "local"
    assert store_dir(one) != store_dir(two)
    assert store_dir(one) == store_dir(tmp_path / "one" / ".." / "one" / "local")


def test_without_a_private_xdg_runtime_dir_the_store_is_in_a_private_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)  # not private: a login manager never makes it so; not used
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(loose))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    expected = tmp_path / "tmp" / f"shakeout-{os.getuid()}"
    assert private_root() == expected
    key_file = open_store(tmp_path / "runtime" / "local")
    assert key_file.parent.parent == expected
    assert _mode(expected) == 0o700
    assert remove_store(tmp_path / "runtime" / "local")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert private_root() == expected


def test_a_planted_store_folder_is_refused(tmp_path: Path, xdg: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (xdg / "shakeout").symlink_to(elsewhere)  # someone's link where our folder goes
    with pytest.raises(PlatformError, match="refusing to keep the shared key there"):
        open_store(tmp_path / "runtime" / "local")
    assert list(elsewhere.iterdir()) == []


def test_the_store_of_a_live_daemon_is_left_alone_and_a_dead_ones_removed(
    tmp_path: Path, xdg: Path
) -> None:
    runtime = tmp_path / "runtime" / "local"
    key_file = open_store(runtime)
    write_private(key_file, SharedKeyDocument("k" * 32).dumps())
    # A stand-in daemon: a process whose command line names the daemon's module.
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "shakeout.platform.daemon"],
        stdin=subprocess.PIPE,
    )
    try:
        pointer = runtime / POINTER_FILENAME
        pointer.write_text(json.dumps({"store": str(key_file.parent), "pid": daemon.pid}))
        assert not remove_store(runtime)
        assert key_file.exists()
    finally:
        assert daemon.stdin is not None
        daemon.stdin.close()
        daemon.wait(timeout=10)
    assert remove_store(runtime)  # its daemon is gone: nobody owns it any more
    assert not key_file.parent.exists()


def test_removal_touches_nothing_but_this_platforms_store(tmp_path: Path, xdg: Path) -> None:
    runtime = tmp_path / "runtime" / "local"
    open_store(runtime)
    bystander = tmp_path / "bystander"
    bystander.mkdir(mode=0o700)
    (bystander / "keep.txt").write_text("mine")
    (runtime / POINTER_FILENAME).write_text(json.dumps({"store": str(bystander), "pid": 1}))
    remove_store(runtime)
    assert (bystander / "keep.txt").read_text() == "mine"
    assert not store_dir(runtime).exists()  # its own store went all the same


def test_the_supervisor_removes_its_store_when_it_stops(tmp_path: Path, xdg: Path) -> None:
    target = load_target(LOCAL)
    runtime = tmp_path / "runtime" / "local"

    async def run() -> Path:
        sup = Supervisor(target, runtime, dict.fromkeys(target.services, 0))
        sup.secret_file = open_store(runtime)  # what start() does before the first key
        sup.write_secret("k" * 32, previous=None)
        assert _mode(sup.secret_file) == 0o600
        await sup.stop()  # no replica started: only the store has to go
        return sup.secret_file

    key_file = asyncio.run(run())
    assert not key_file.parent.exists()
    assert not (runtime / POINTER_FILENAME).exists()


def test_a_key_document_never_shows_its_keys() -> None:
    document = SharedKeyDocument("current-secret", "previous-secret", 1.0, 10.0)
    text = f"{document!r} {document!s} {[document]}"
    assert "current-secret" not in text
    assert "previous-secret" not in text
    assert key_id("current-secret") in text
    assert key_id("previous-secret") in text


def test_the_scan_finds_a_key_in_any_file_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "chart.png").write_bytes(b"\x89PNG\x00\xff" + b"sekrit" + b"\x00")
    encoded = base64.b64encode(b"other").decode()
    (tmp_path / "journal.json").write_text(json.dumps({"output": encoded}))
    (tmp_path / "clean.txt").write_text("nothing here")
    assert leaks(tmp_path, ["sekrit", "other", "absent"]) == [
        f"a/b/chart.png: {key_id('sekrit')}",
        f"journal.json: {key_id('other')} (base64)",
    ]


# -- every way a platform stops ------------------------------------------------------------------


def test_down_removes_the_store_a_killed_daemon_left(
    runtime_dir: Path, xdg: Path, no_leftovers: None
) -> None:
    state, _ = lifecycle.up(LOCAL, owner_pid=os.getpid())
    try:
        store = store_dir(state_dir(state.target))
        document = SharedKeyDocument.loads((store / SECRET_FILENAME).read_text())
        assert not store.is_relative_to(runtime_dir)
        assert _mode(store) == 0o700
        assert _mode(store / SECRET_FILENAME) == 0o600
        assert leaks(runtime_dir, [document.current]) == []
        os.kill(state.pid, signal.SIGKILL)  # no cleanup code runs
        assert wait_for(lambda: not pid_alive(state.pid), 10)
        assert (store / SECRET_FILENAME).exists()
    finally:
        assert lifecycle.down(state.target)
    assert not store.exists()
    assert not (state_dir(state.target) / POINTER_FILENAME).exists()
    assert leaks(runtime_dir, [document.current, state.token]) == []  # state.json went too


def test_a_daemon_stopping_by_itself_removes_its_store(
    runtime_dir: Path, xdg: Path, no_leftovers: None
) -> None:
    store = store_dir(state_dir("local"))
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        state, _ = lifecycle.up(LOCAL, owner_pid=owner.pid)
        assert (store / SECRET_FILENAME).exists()
    finally:
        assert owner.stdin is not None
        owner.stdin.close()  # the owner ends: the daemon stops on its own, nobody calls down
        owner.wait(timeout=10)
    try:
        assert wait_for(lambda: not pid_alive(state.pid), 15)
        assert not store.exists()
        assert not (state_dir(state.target) / POINTER_FILENAME).exists()
    finally:
        lifecycle.down(state.target)


# -- a whole run ---------------------------------------------------------------------------------


@dataclass
class SecretWatch:
    """Every key the platform's store held and the control token, read while the run goes on
    (never shown: a failed assertion prints this object)."""

    runtime: Path
    target: str = "local"
    keys: set[str] = field(default_factory=set, repr=False)
    tokens: set[str] = field(default_factory=set, repr=False)
    stores: set[str] = field(default_factory=set)

    def poll(self) -> None:
        """Read the store (and any file beside it: the store taken offline, a write under
        way) and the state file, once."""
        directory = self.runtime / self.target
        store = store_dir(directory)
        try:
            self.stores.add(json.loads((directory / POINTER_FILENAME).read_text())["store"])
            self.tokens.add(json.loads((directory / "state.json").read_text())["token"])
        except (OSError, ValueError, KeyError):
            pass  # not written yet, or between two writes
        try:
            files = list(store.iterdir())
        except OSError:
            return
        for path in files:
            try:
                document = SharedKeyDocument.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            self.keys.add(document.current)
            if document.previous:
                self.keys.add(document.previous)


@pytest.mark.drill
def test_a_key_rotation_drill_leaves_no_secret_in_reports(
    tmp_path: Path, xdg: Path, no_leftovers: None
) -> None:
    reports = tmp_path / "reports"
    runtime = reports / "platform"  # where it is by default: inside reports/
    env = {
        **os.environ,
        "SHAKEOUT_RUNTIME_DIR": str(runtime),
        "SHAKEOUT_REPORTS_DIR": str(reports),
    }
    command = [
        sys.executable, "-m", "pytest", "steps", "--target", str(LOCAL),
        "-p", "no:cacheprovider", "-q", "-k", "rotated",
        "--alluredir", str(reports / "allure-results"), "--junitxml", str(reports / "junit.xml"),
    ]  # fmt: skip
    watch = SecretWatch(runtime)
    output = tmp_path / "drill.out"
    with output.open("w", encoding="utf-8") as out:
        drill = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        try:

            def done() -> bool:
                watch.poll()
                return drill.poll() is not None

            assert wait_for(done, 300, period_s=0.02), "the drill did not end within 300 s"
        finally:
            if drill.poll() is None:
                drill.kill()
            drill.wait()
    text = output.read_text(encoding="utf-8", errors="replace")
    assert drill.returncode == 0, text[-4000:]
    assert "1 passed" in text, text[-4000:]

    # The keys collected are every key the store issued: the audit log names each by id.
    audit_log = (runtime / "local" / "audit.log").read_text(encoding="utf-8")
    audit = [json.loads(line) for line in audit_log.splitlines()]
    rotations = [a for a in audit if a["action"] == "key_rotated"]
    assert rotations, "the drill rotated no key"
    issued = {a["key_id"] for a in rotations} | {a["previous_key_id"] for a in rotations}
    seen = {key_id(k) for k in watch.keys}
    assert issued <= seen, "a key the store issued was missed"
    assert len(seen) >= 2
    tokens = len(watch.tokens)
    assert tokens == 1, f"{tokens} control tokens seen, for one platform"

    # Gone with the platform: the store, its pointer, and every store of this user's folder.
    assert watch.stores == {str(store_dir(runtime / "local"))}
    assert not Path(next(iter(watch.stores))).exists()
    assert not (runtime / "local" / POINTER_FILENAME).exists()
    assert list((xdg / "shakeout").iterdir()) == []

    # The whole run's output: every file, text or binary, and what the drill printed.
    scanned = [p for p in reports.rglob("*") if p.is_file()]
    kinds = {p.name for p in scanned}
    assert {"junit.xml", "verdicts.json", "events.jsonl", "audit.log"} <= kinds, sorted(kinds)
    assert any(p.name.startswith("journal-") for p in scanned)
    assert any(p.parent.name == "logs" for p in scanned)  # every replica's log
    assert any(p.parent.name == "allure-results" for p in scanned)
    secrets = watch.keys | watch.tokens
    assert leaks(reports, secrets) == []
    assert leaks(tmp_path, secrets) == []  # the drill's own output too (drill.out)
