"""Target events in plain words: what a feature says for an event kind the target reports.

The embedded platform (and a cluster session) report events by kind (``breaker_opened``); a
feature says what happened (``the target reports that a circuit breaker opened``). Each phrase
here becomes a ``Then`` step, so a misspelt one is an unknown step, refused before anything
runs. A kind without words here is still checked with ``the target reported a "kind" event``.
"""

from __future__ import annotations

EVENT_WORDS: dict[str, str] = {
    "breaker_opened": "a circuit breaker opened",
    "autoscaled": "the autoscaler added replicas",
    "config_applied": "the config change was applied",
    "config_canary_failed": "the config canary failed",
    "config_reverted": "the config change was reverted",
    "migration_completed": "the schema migration completed",
    "key_rotated": "the shared key was rotated",
    "capacity_removed": "capacity was removed",
    "replica_ejected": "a replica was ejected",
    "replica_restarted": "a replica was restarted",
    "rollout_rolled_back": "a release was rolled back",
    "rollout_promoted": "a release was promoted",
    "zone_not_ready": "a zone was found not ready",
    "eviction_refused": "a disruption budget held an eviction back",
    "replica_evicted": "a replica was evicted",
    "image_pull_failed": "an image pull failed",
}
"""Event kind -> what happened, in words (``the target reports that <words>``)."""


def describe(kind: str) -> str:
    """An event kind in words (the kind itself when it has none)."""
    return EVENT_WORDS.get(kind, f"a {kind} event happened")
