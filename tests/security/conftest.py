"""The operator's integration fixture (:mod:`tests.operator.harness`) and fast operator settings for the
operator processes these tests start."""

from __future__ import annotations

import os

from tests.operator.harness import world

os.environ.setdefault("SIEM_OPERATOR_DRIFT_INTERVAL", "1")
os.environ.setdefault("SIEM_OPERATOR_REQUEUE_SECONDS", "0.3")

__all__ = ["world"]
