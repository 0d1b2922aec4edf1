"""Kubernetes Events of a SiemPipeline: waiting for OCI to provision is progress, never an Error Event; a real
failure still gets a Warning (the service-limit case, and a failure that lasts: :mod:`tests.operator.test_limits`);
a plain-HTTP destination gets one per spec generation."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from siem_operator.handlers import WAITING, QuietWaits
from tests.operator.harness import World, metric, wait_for
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


def _object_record(message: str, uid: str, level: int = logging.ERROR) -> logging.LogRecord:
    record = _record(message, level)
    record.k8s_ref = {"kind": "SiemPipeline", "name": uid, "uid": uid, "namespace": "default"}
    return record


def test_kopf_posts_a_lasting_failure_once_not_at_every_retry() -> None:
    """kopf's own Error Event of a retried failure: each retry's message has a new opc-request-id, so
    Kubernetes would keep them all; the filter lets kopf post it again only when what it says changes, after
    an hour, or after a success in between. The log keeps every record at ERROR."""
    now = [0.0]
    quiet = QuietWaits(repeat_after=3600, clock=lambda: now[0])

    def posted(message: str, uid: str = "u1", level: int = logging.ERROR) -> bool:
        record = _object_record(message, uid, level)
        assert quiet.filter(record)
        assert record.levelno == level  # logged as it was
        return not getattr(record, "k8s_skip", False)

    limit = "Handler 'reconcile' failed temporarily: cannot create Stream/events: LimitExceeded"
    assert posted(f"{limit} (opc-request-id AAA)")
    now[0] = 300.0
    assert not posted(f"{limit} (opc-request-id BBB)")  # the same failure, retried
    assert posted(f"{limit} (opc-request-id CCC)", uid="u2")  # another pipeline's
    assert posted("Handler 'reconcile' failed temporarily: cannot create Topic/fetch: NotAuthorizedOrNotFound "
                  "(opc-request-id DDD)")  # something else now
    assert posted(f"{limit} (opc-request-id EEE)")  # and the first again: it changed back
    now[0] = 300.0 + 3600
    assert posted(f"{limit} (opc-request-id FFF)")  # an hour on: told again, so one stays visible
    assert not posted(f"{limit} (opc-request-id GGG)")
    assert posted("Handler 'reconcile' succeeded.", level=logging.INFO)
    assert posted(f"{limit} (opc-request-id HHH)")  # over, then back: told again


def test_a_plain_http_destination_is_told_once_per_spec_generation(world: World) -> None:
    spec = world.spec()
    spec["destination"]["hec"]["url"] = "http://splunk.example.com:8088"

    def insecure(uid: str) -> list[Any]:
        return [e for e in world.events(uid) if e.reason == "InsecureDestination"]

    def drift_ticks() -> float:
        return metric("siem_operator_reconciles_total", trigger="drift", outcome="Converged")

    with operator():
        uid = world.apply("plain", spec)["metadata"]["uid"]
        world.wait_condition("plain", "Ready", "True", "Available", timeout=60)  # insecure is not unready
        cond = world.wait_condition("plain", "DestinationSecure", "False", "InsecureDestination")
        assert cond["message"].startswith("spec.destination.hec.url is a plain http:// URL: the export sends the "
                                          "events and its token unencrypted")
        (first,) = wait_for(lambda: insecure(uid), 15, "the InsecureDestination Warning")
        assert first.type == "Warning"
        assert "DestinationSecure=False: spec.destination.hec.url is a plain http:// URL" in first.message
        assert world.hec_token not in first.message
        ticks = drift_ticks()
        wait_for(lambda: drift_ticks() >= ticks + 2, 30, "two drift ticks")

        # a change of the spec that keeps the http:// URL: told again, once
        spec["redaction"] = {"extraFieldPaths": ["request.headers.X-Audit-Test"]}
        world.patch_spec("plain", spec)
        wait_for(lambda: (world.condition("plain", "DestinationSecure") or {}).get("observedGeneration") == 2, 30,
                 "DestinationSecure about generation 2")
        wait_for(lambda: len(insecure(uid)) == 2, 15, "the second InsecureDestination Warning")

        # https: the condition turns True and nothing more is posted, drift ticks included
        spec["destination"]["hec"]["url"] = "https://splunk.example.com:8088"
        world.patch_spec("plain", spec)
        world.wait_condition("plain", "DestinationSecure", "True", "TLS")
        ticks = drift_ticks()
        wait_for(lambda: drift_ticks() >= ticks + 3, 30, "three drift ticks")
        assert len(insecure(uid)) == 2, [(e.reason, e.message) for e in world.events(uid)]
        assert (world.condition("plain", "Ready") or {}).get("status") == "True"
