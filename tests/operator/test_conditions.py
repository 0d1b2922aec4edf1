"""Ready, Synced and DestinationSecure conditions, and the status computed after a reconcile."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from siem_operator import spec as s
from siem_operator.children import Action, ActionType, ChildKind, Difference, Ref
from siem_operator.conditions import (
    DESTINATION_SECURE,
    READY,
    SYNCED,
    Reason,
    action_summary,
    compute_status,
    destination_condition,
    find,
    ready_condition,
    set_condition,
    synced_condition,
)
from siem_operator.desired import MissingSecretValue
from siem_operator.errors import Classified, ErrorKind, about_child, classify
from siem_operator.planner import Plan
from tests.operator.test_errors import service_error

T0 = datetime.datetime(2026, 11, 27, 3, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
STREAM = Ref(ChildKind.STREAM, "events")
FUNCTION = Ref(ChildKind.FUNCTION, "fetch")

CONVERGED = Plan(actions=(), desired_count=14)
CREATING = Plan(actions=(Action(ActionType.CREATE, STREAM, "creating"),), unready=(STREAM, FUNCTION),
                desired_count=14)
IMMUTABLE = Plan(actions=(Action(ActionType.BLOCKED, STREAM, "Stream/events: partitions is 1 in OCI but the spec "
                                 "asks for 4. … set the spec back …", (Difference("partitions", 4, 1, False),)),),
                 desired_count=14)
FAILED = Plan(actions=(Action(ActionType.BLOCKED, FUNCTION, "Function/fetch is FAILED in OCI: delete it in OCI"),),
              unready=(FUNCTION,), desired_count=14)
UPDATING = Plan(actions=(Action(ActionType.UPDATE, FUNCTION, "updating"),), desired_count=14)


def cond(type_: str, status: str, reason: str, message: str = "m", generation: int = 1,
         at: datetime.datetime = T0) -> s.Condition:
    return s.Condition(type=type_, status=s.ConditionStatus(status), reason=reason, message=message,
                       last_transition_time=at, observed_generation=generation)


def test_setting_an_equal_condition_is_a_no_op() -> None:
    current = [cond(READY, "True", "Available")]
    out, changed = set_condition(current, cond(READY, "True", "Available", at=T1))
    assert not changed
    assert out == current
    assert out[0].last_transition_time == T0


def test_transition_time_moves_only_when_status_does() -> None:
    current = [cond(READY, "False", "Creating", "3 of 14"), cond(SYNCED, "True", "ReconcileSuccess")]
    out, changed = set_condition(current, cond(READY, "False", "Creating", "9 of 14", at=T1))
    assert changed
    assert out[0].message == "9 of 14"
    assert out[0].last_transition_time == T0
    out, changed = set_condition(out, cond(READY, "True", "Available", at=T1))
    assert changed
    assert out[0].last_transition_time == T1
    assert out[1] == current[1]  # the other condition untouched, order kept
    out, changed = set_condition(out, cond(READY, "True", "Available", generation=2, at=T1))
    assert changed
    assert out[0].observed_generation == 2


READY_TABLE: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("converged", {"plan": CONVERGED}, "True", "Available", "all 14 OCI resources are ready"),
    ("creating", {"plan": CREATING}, "False", "Creating", "12 of 14 OCI resources are ready; waiting for "
                                                          "Stream/events, Function/fetch"),
    ("immutable change keeps it ready", {"plan": IMMUTABLE}, "True", "Available", "all 14"),
    ("failed child", {"plan": FAILED}, "False", "Unavailable", "Function/fetch failed in OCI: delete it in OCI"),
    ("updating keeps it ready", {"plan": UPDATING}, "True", "Available", "all 14"),
    ("suspended", {"plan": CONVERGED, "suspended": True}, "False", "Suspended", "set it to false to resume"),
    ("deleting", {"plan": Plan(actions=(Action(ActionType.DELETE, STREAM, "d"),)), "deleting": True},
     "False", "Deleting", "remaining: Stream/events"),
    ("retained", {"plan": Plan(actions=(), retained=(STREAM,), deleted=True), "deleting": True},
     "False", "Deleting", "deletionPolicy is Retain: 1 OCI resources are left in place"),
    ("missing secret", {"plan": None, "error": classify(MissingSecretValue("token", s.SecretKeyRef(name="hec",
                                                                                                  key="token")))},
     "False", "SecretNotFound", "create it in the SiemPipeline's namespace"),
    ("unexpected", {"plan": None, "error": classify(KeyError("x"))}, "Unknown", "UnexpectedError", "KeyError"),
    ("throttled before planning", {"plan": None, "error": classify(service_error(429, "TooManyRequests"))},
     "Unknown", "Throttled", "opc-request-id REQ123"),
    ("bad credentials", {"plan": None, "error": classify(service_error(400, "InvalidParameter"))},
     "False", "InvalidSpec", "fix the SiemPipeline spec"),
    ("creating stopped by a limit", {"plan": CREATING, "error": about_child(
        classify(service_error(400, "LimitExceeded", "limit of 3")), STREAM)},
     "False", "LimitExceeded", "12 of 14 OCI resources are ready; cannot create Stream/events: it would exceed the "
                               "region's Streaming partition limit"),
    ("creating, throttled: still creating", {"plan": CREATING, "error": classify(service_error(429, "TooMany"))},
     "False", "Creating", "waiting for Stream/events"),
    ("ready, a limit on an update: still ready", {"plan": CONVERGED, "error": classify(
        service_error(400, "LimitExceeded"))}, "True", "Available", "all 14"),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "reason", "message"), READY_TABLE,
                         ids=[t[0] for t in READY_TABLE])
def test_ready(name: str, kwargs: dict[str, Any], status: str, reason: str, message: str) -> None:
    c = ready_condition(generation=3, now=T1, **kwargs)
    assert (c.type, c.status.value, c.reason) == (READY, status, reason)
    assert message in c.message
    assert c.observed_generation == 3


SYNCED_TABLE: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("nothing to do", {"plan": CONVERGED}, "True", "ReconcileSuccess", "the OCI resources match the spec"),
    ("acted and waiting", {"plan": Plan(actions=(Action(ActionType.CREATE, STREAM, "c"),
                                                 Action(ActionType.WAIT, FUNCTION, "w")))},
     "True", "ReconcileSuccess", "applied 1 change(s); waiting for Function/fetch"),
    ("immutable", {"plan": IMMUTABLE}, "False", "ImmutableFieldChanged", "set the spec back"),
    ("failed child", {"plan": FAILED}, "False", "ChildFailed", "delete it in OCI"),
    ("oci error", {"plan": CONVERGED, "error": classify(service_error(404, "NotAuthorizedOrNotFound"))},
     "False", "NotAuthorized", "IAM policy"),
    ("retained orphans", {"plan": Plan(actions=(), retained=(Ref(ChildKind.SCHEDULE, "trigger"),))},
     "True", "ReconcileSuccess", "Schedule/trigger no longer in the spec but kept"),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "reason", "message"), SYNCED_TABLE,
                         ids=[t[0] for t in SYNCED_TABLE])
def test_synced(name: str, kwargs: dict[str, Any], status: str, reason: str, message: str) -> None:
    c = synced_condition(generation=3, now=T1, **kwargs)
    assert (c.type, c.status.value, c.reason) == (SYNCED, status, reason)
    assert message in c.message


def test_reasons_are_camel_case() -> None:
    for reason in [*Reason, *(t[3] for t in READY_TABLE), *(t[3] for t in SYNCED_TABLE)]:
        assert str(reason)[0].isupper()
        assert str(reason).isalnum()


def test_compute_status_writes_once_then_is_idle() -> None:
    children = [s.ChildStatus(kind="Stream", key="events", ocid="ocid1.stream.oc1..x", lifecycle_state="ACTIVE")]
    first, changed = compute_status(None, generation=2, now=T0, plan=CONVERGED, children=children)
    assert changed
    assert first["observedGeneration"] == 2
    assert [(c["type"], c["status"], c["reason"]) for c in first["conditions"]] == [
        ("Ready", "True", "Available"), ("Synced", "True", "ReconcileSuccess")]
    assert first["conditions"][0]["lastTransitionTime"] == "2026-11-27T03:00:00Z"
    assert first["children"] == [{"kind": "Stream", "key": "events", "ocid": "ocid1.stream.oc1..x",
                                  "lifecycleState": "ACTIVE", "incarnation": 0}]
    # the same outcome later: nothing to write (kopf's own status fields are ignored)
    again, changed = compute_status({**first, "kopf": {"progress": {}}}, generation=2, now=T1, plan=CONVERGED)
    assert not changed
    assert again == first
    # a new generation: conditions move, their transition time does not
    third, changed = compute_status(first, generation=3, now=T1, plan=CONVERGED)
    assert changed
    assert third["conditions"][0]["observedGeneration"] == 3
    assert third["conditions"][0]["lastTransitionTime"] == "2026-11-27T03:00:00Z"


def test_compute_status_from_failure_to_recovery() -> None:
    missing, _ = compute_status(None, generation=1, now=T0, plan=None,
                                error=classify(service_error(503, "ServiceUnavailable")))
    synced = find([s.Condition.model_validate(c) for c in missing["conditions"]], SYNCED)
    assert synced is not None
    assert synced.reason == "ServiceUnavailable"
    recovered, changed = compute_status(missing, generation=1, now=T1, plan=CONVERGED,
                                        health=s.Health(region_count=3, lag="4m", lag_seconds=240))
    assert changed
    assert [c["lastTransitionTime"] for c in recovered["conditions"]] == ["2026-11-27T03:05:00Z"] * 2
    assert recovered["health"]["regionCount"] == 3
    assert recovered["health"]["lag"] == "4m"


TOKEN = {"secretRef": {"name": "splunk-hec", "key": "token"}}
DESTINATION_TABLE: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("hec over https", {"hec": {"url": "https://splunk.example.com:8088", "token": TOKEN}}, "True", "TLS",
     "the hec destination is reached over TLS, its certificate verified against the public CAs"),
    ("hec over http", {"hec": {"url": "http://splunk.example.com:8088", "token": TOKEN}}, "False",
     "InsecureDestination", "spec.destination.hec.url is a plain http:// URL: the export sends the events and "
                            "its token unencrypted"),
    ("bulk over http, no token", {"bulk": {"url": "http://search:9200"}}, "False", "InsecureDestination",
     "spec.destination.bulk.url is a plain http:// URL: the export sends the events unencrypted"),
    ("bulk over https with a CA bundle", {"bulk": {"url": "https://search:9200"}, "caBundle": TOKEN}, "True",
     "TLS", "public CAs and spec.destination.caBundle"),
    ("syslog over TCP", {"syslog": {"host": "siem.example.com", "transport": "TCP"}}, "False",
     "InsecureDestination", "spec.destination.syslog.transport is TCP (plain, no TLS): the export sends the events "
                            "unencrypted and cannot tell the receiver from an impostor; use transport: TLS"),
    ("syslog over TLS", {"syslog": {"host": "siem.example.com"}}, "True", "TLS", "the syslog destination"),
]


@pytest.mark.parametrize(("name", "destination", "status", "reason", "message"), DESTINATION_TABLE,
                         ids=[t[0] for t in DESTINATION_TABLE])
def test_destination_secure(name: str, destination: dict[str, Any], status: str, reason: str, message: str) -> None:
    c = destination_condition(s.Destination.model_validate(destination), generation=2, now=T0)
    assert (c.type, c.status.value, c.reason, c.observed_generation) == (DESTINATION_SECURE, status, reason, 2)
    assert message in c.message
    assert "splunk-hec" not in c.message  # where the token lives is not the condition's business


def test_compute_status_sets_destination_secure_when_the_spec_is_known() -> None:
    plain = s.Destination.model_validate({"hec": {"url": "http://splunk:8088", "token": TOKEN}})
    first, _ = compute_status(None, generation=1, now=T0, plan=CONVERGED, destination=plain)
    assert [(c["type"], c["status"], c["reason"]) for c in first["conditions"]] == [
        ("Ready", "True", "Available"), ("Synced", "True", "ReconcileSuccess"),
        ("DestinationSecure", "False", "InsecureDestination")]
    # no spec this time (it did not validate): the condition stays as it was, about generation 1
    kept, _ = compute_status(first, generation=2, now=T1, plan=None,
                             error=Classified(ErrorKind.INVALID_SPEC, "the spec is invalid"))
    assert kept["conditions"][2] == first["conditions"][2]
    tls = s.Destination.model_validate({"hec": {"url": "https://splunk:8088", "token": TOKEN}})
    fixed, changed = compute_status(kept, generation=3, now=T1, plan=CONVERGED, destination=tls)
    assert changed
    assert fixed["conditions"][2]["status"] == "True"
    assert (fixed["conditions"][2]["observedGeneration"], fixed["conditions"][2]["lastTransitionTime"]) == (
        3, "2026-11-27T03:05:00Z")


def test_action_summary() -> None:
    assert action_summary(CREATING) == {"Create": 1}
    assert action_summary(IMMUTABLE) == {"Blocked": 1}


def test_the_computed_status_is_valid_for_the_crd() -> None:
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    from siem_operator.crd import openapi_schema

    status, _ = compute_status({"kopf": {"progress": {}}}, generation=4, now=T0, plan=IMMUTABLE,
                               children=[s.ChildStatus(kind="Stream", key="events", name="siem-x", ocid="ocid1.x")],
                               destination=s.Destination.model_validate({"syslog": {"host": "h", "transport": "TCP"}}),
                               health=s.Health(region_count=2, lag="1m", lag_seconds=60, last_export_time=T0,
                                               regions=[s.RegionHealth(region="us-ashburn-1", lag_seconds=60)]))
    validator = OAS30Validator(openapi_schema()["properties"]["status"], format_checker=oas30_format_checker)
    assert [e.message for e in validator.iter_errors(status)] == []
