"""Run ``chaos run`` under a guard that turns every kind of abort into exactly one SIGUSR1.

chaoslib ends the method on SIGUSR1 and plays the rollbacks, but a *second* SIGUSR1 (or a
SIGINT) during the rollbacks ends them too. A harness killed outright would deliver its
parent-death signal once per thread of the harness (the kernel re-parents the child to the
next thread and signals again), and a terminal's Ctrl-C reaches the whole process group. So:

* the guard sits between the harness and ``chaos run``; it dies-with-parent on SIGUSR1 and
  ignores SIGINT (the harness decides to abort, and says so with SIGUSR1);
* ``chaos run`` runs in its own session (no terminal signals) and dies-with-parent on the
  single-threaded guard: it gets SIGUSR1 exactly once if the guard dies;
* the guard forwards the first SIGUSR1 or SIGTERM to ``chaos run`` and ignores the rest.

Usage: ``python -m shakeout.chaos._guard chaos ...``; exits with ``chaos run``'s exit code.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

from shakeout._process import die_with_my_parent, die_with_parent


def main(argv: list[str]) -> int:
    """Start ``argv`` guarded and wait for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_my_parent(signal.SIGUSR1)
    child = subprocess.Popen(
        argv,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGUSR1),  # noqa: PLW1509 (single-threaded here)
    )
    forwarded = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal forwarded
        if not forwarded and child.poll() is None:
            forwarded = True
            child.send_signal(signal.SIGUSR1)

    signal.signal(signal.SIGUSR1, forward)
    signal.signal(signal.SIGTERM, forward)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
