"""Kubernetes Events of a SiemPipeline: waiting for OCI to provision is progress, never an Error Event; a real
failure still gets a Warning (the service-limit case: :mod:`tests.operator.test_limits`)."""

from __future__ import annotations

import logging
from collections import Counter

from siem_operator.handlers import WAITING, QuietWaits
from tests.operator.harness import World, wait_for
from tests.operator.test_handlers import operator


def test_an_apply_that_waits_for_oci_leaves_no_error_event(world: World) -> None:
    world.control.settings(provisioningDelay=1.0)  # every child is CREATING for a second: the handler waits
    with operator() as runner:
        uid = world.apply("patient")["metadata"]["uid"]
        world.wait_condition("patient", "Ready", "True", "Available", timeout=60)
        # kopf's own records are posted (SIEM_OPERATOR_POST_KOPF_EVENTS defaults to true): its success shows
        wait_for(lambda: any(e.reason == "Logging" and "succeeded" in e.message for e in world.events(uid)), 15,
                 "kopf's Event of the handler's success")
        events = world.events(uid)
        assert Counter(e.type for e in events)["Normal"] == len(events), [(e.type, e.reason, e.message)
                                                                        for e in events if e.type != "Normal"]
        assert not [e for e in events if "failed temporarily" in e.message]
        assert any(e.reason == "Created" for e in events)
    waits = [line for line in runner.output.splitlines() if f"failed temporarily: {WAITING}" in line]
    assert waits, "the handler never waited: the test proves nothing"
    assert all("INFO" in line and "ERROR" not in line for line in waits), waits


def _record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_only_a_wait_is_quieted() -> None:
    quiet = QuietWaits()
    wait = _record(f"Handler 'reconcile' failed temporarily: {WAITING}: Stream/events is CREATING")
    assert quiet.filter(wait)
    assert (wait.levelno, wait.levelname, getattr(wait, "k8s_skip", None)) == (logging.INFO, "INFO", True)
    failure = _record("Handler 'reconcile' failed temporarily: cannot create Stream/events: it would exceed …")
    assert quiet.filter(failure)
    assert (failure.levelno, getattr(failure, "k8s_skip", None)) == (logging.ERROR, None)
    success = _record("Handler 'reconcile' succeeded.", logging.INFO)
    assert quiet.filter(success)
    assert getattr(success, "k8s_skip", None) is None
