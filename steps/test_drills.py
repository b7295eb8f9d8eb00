"""Collects every feature in features/ as pytest tests (the one ``scenarios`` call)."""

from pytest_bdd import scenarios

scenarios("../features")
