"""The operator's integration fixtures (:mod:`tests.operator.harness`), and fast operator settings.

The drift interval is read when :mod:`siem_operator.handlers` is imported, so it is set here, before any
test module imports it.
"""

from __future__ import annotations

import os

import pytest

from tests.operator.harness import world

os.environ.setdefault("SIEM_OPERATOR_DRIFT_INTERVAL", "1")
os.environ.setdefault("SIEM_OPERATOR_REQUEUE_SECONDS", "0.3")

__all__ = ["world"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a long fault sweep, skipped unless SIEM_CHAOS=1 is set")
