"""Test profile that fails to import."""

import shakeout.no_such_module  # noqa: F401
