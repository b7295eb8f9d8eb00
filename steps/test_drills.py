"""Collects the feature library (``features/``, or ``--features``) as pytest tests.

Features named on the command line instead (``pytest steps my/drills/``) are collected from
there by the plugin (:mod:`steps.plugin`), and the library is left out.
"""

from pytest_bdd import scenarios

from steps.plugin import library_features

_library = library_features()
if _library:
    scenarios(*_library)
