"""The reconciler against kubesim (status, Secrets) and ocisim (children), without kopf: gather → plan → act."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.clients import FactoryCache
from siem_operator.desired import desired_children
from siem_operator.kube import KubernetesApi
from siem_operator.reconciler import Outcome, PipelineObject, Reconciler, Settings
from siem_operator.spec import parse_spec
from siem_pipeline.consumer import RetentionGap
from siem_pipeline.oci_clients import CircuitBreakerPolicy, ClientSettings
from siem_pipeline.producer import StreamProducer
from tests.functions.collect_support import make_factory
from tests.operator.harness import World


@pytest.fixture
def reconciler(world: World) -> Any:
    factories = FactoryCache()
    built = Reconciler(KubernetesApi(world.api_client), factories, Settings(requeue_seconds=0.1))
    yield built
    factories.close()


def obj(world: World, name: str, **spec_changes: Any) -> PipelineObject:
    body = world.get(name)
    assert body is not None
    if spec_changes:
        body["spec"] = {**body["spec"], **spec_changes}
    return PipelineObject.from_body(body)


def expected_children(world: World, name: str) -> int:
    body = world.get(name)
    assert body is not None
    pipeline = PipelineObject.from_body(body)
    secrets = {key: SecretStr("x") for key in parse_spec(body["spec"]).kubernetes_secret_sources()}
    return len(desired_children(parse_spec(body["spec"]), pipeline.identity, secret_values=secrets))


WRITE_VERBS = frozenset({"create", "update", "delete", "change", "schedule", "cancel", "put", "publish"})


def oci_calls() -> Counter[str]:
    """OCI SDK calls so far, by operation (the operator's own counter)."""
    out: Counter[str] = Counter()
    for family in REGISTRY.collect():
        if family.name == "siem_operator_oci_calls":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["operation"]] += int(sample.value)
    return out


def identities(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((i["_kind"], i.get("name") or i.get("displayName") or i.get("secretName")
                    or f"{i.get('topicId')}->{i.get('endpoint')}") for i in items)


def test_one_reconcile_creates_every_child_once_and_reports_ready(world: World, reconciler: Reconciler) -> None:
    created = world.apply("p1")
    result = reconciler.reconcile(obj(world, "p1"))
    assert result.outcome == Outcome.CONVERGED, result.message
    uid = created["metadata"]["uid"]
    owned = world.owned(uid)
    status = (world.get("p1") or {})["status"]
    count = expected_children(world, "p1")
    assert len(owned) == len(status["children"]) == count
    assert all(count == 1 for count in identities(owned).values())
    assert {c["ocid"] for c in status["children"]} == {i.get("id") or i.get("topicId") or i.get("subscriptionId")
                                                       for i in owned} - {None}
    ready = world.condition("p1", "Ready")
    synced = world.condition("p1", "Synced")
    assert ready is not None
    assert ready["status"] == "True"
    assert ready["reason"] == "Available"
    assert synced is not None
    assert synced["status"] == "True"
    assert synced["observedGeneration"] == 1
    assert status["health"]["regionCount"] == 1
    assert sum(e.reason == "Created" for e in result.events) == count
    assert world.hec_token not in json.dumps(status) + repr(result)

    # steady state: nothing to do, nothing written, in OCI or in Kubernetes
    version = (world.get("p1") or {})["metadata"]["resourceVersion"]
    before = oci_calls()
    again = reconciler.reconcile(obj(world, "p1"))
    assert again.outcome == Outcome.CONVERGED
    assert again.events == []
    calls = oci_calls() - before
    writes = {op: n for op, n in calls.items() if op.split("_")[0] in WRITE_VERBS and op != "create_cursor"}
    assert writes == {}
    assert sum(calls.values()) <= 25, calls  # a read per child, and the state stream's health
    assert (world.get("p1") or {})["metadata"]["resourceVersion"] == version


def test_a_lost_status_never_duplicates_a_child(world: World, reconciler: Reconciler) -> None:
    uid = world.apply("p2")["metadata"]["uid"]
    assert reconciler.reconcile(obj(world, "p2")).outcome == Outcome.CONVERGED
    before = identities(world.owned(uid))
    world.patch_status("p2", {"children": None})  # as if every status write had been lost
    result = reconciler.reconcile(obj(world, "p2"))
    assert result.outcome == Outcome.CONVERGED
    assert not [e for e in result.events if e.reason == "Created"]
    assert identities(world.owned(uid)) == before
    assert len((world.get("p2") or {})["status"]["children"]) == expected_children(world, "p2")


def test_an_immutable_change_is_reported_and_nothing_is_replaced(world: World, reconciler: Reconciler) -> None:
    uid = world.apply("p3")["metadata"]["uid"]
    assert reconciler.reconcile(obj(world, "p3")).outcome == Outcome.CONVERGED
    streams = {i["id"]: i["partitions"] for i in world.owned(uid) if i["_kind"] == "streams"}
    spec = (world.get("p3") or {})["spec"]
    result = reconciler.reconcile(obj(world, "p3", streams={**spec["streams"], "partitions": 5}))
    assert result.outcome == Outcome.BLOCKED
    synced = world.condition("p3", "Synced")
    assert synced is not None
    assert synced["status"] == "False"
    assert synced["reason"] == "ImmutableFieldChanged"
    assert "partitions" in synced["message"]
    assert "set the spec back" in synced["message"]
    assert {i["id"]: i["partitions"] for i in world.owned(uid) if i["_kind"] == "streams"} == streams
    assert "ImmutableFieldChanged" in [e.reason for e in result.events]


def test_an_invalid_spec_is_terminal(world: World, reconciler: Reconciler) -> None:
    world.apply("p4", world.spec(trigger={"type": "Autoscaling", "autoscaling": {
        "instancePoolId": "ocid1.instancepool.oc1.iad.aaaaaaaapool"}}, sources={
        **world.spec()["sources"], "schedule": "0 0 1 * 1"}))
    result = reconciler.reconcile(obj(world, "p4"))
    assert result.outcome == Outcome.INVALID
    assert result.terminal
    assert result.requeue_after is None
    synced = world.condition("p4", "Synced")
    assert synced is not None
    assert synced["reason"] == "InvalidSpec"
    assert "day-of-week" in synced["message"]
    assert [e.type for e in result.events] == ["Warning"]
    again = reconciler.reconcile(obj(world, "p4"))
    assert again.events == []  # the same finding is not announced twice


def test_a_missing_secret_waits_and_recovers(world: World, reconciler: Reconciler) -> None:
    world.core.delete_namespaced_secret("splunk-hec", "default")
    world.apply("p5")
    result = reconciler.reconcile(obj(world, "p5"))
    assert result.outcome == Outcome.ERROR
    assert result.requeue_after
    ready = world.condition("p5", "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "SecretNotFound"
    assert "splunk-hec" in ready["message"]
    from tests.operator.harness import secret_body

    world.core.create_namespaced_secret("default", secret_body("splunk-hec", {"token": world.hec_token}))
    assert reconciler.reconcile(obj(world, "p5")).outcome == Outcome.CONVERGED
    world.wait_condition("p5", "Ready", "True", "Available", timeout=1)


def test_deletion_removes_every_child_in_reverse_order(world: World, reconciler: Reconciler) -> None:
    uid = world.apply("p6")["metadata"]["uid"]
    assert reconciler.reconcile(obj(world, "p6")).outcome == Outcome.CONVERGED
    deleting = obj(world, "p6")
    result = Outcome.PROGRESSING
    for _ in range(20):
        deleting = PipelineObject.from_body({**(world.get("p6") or {}),
                                             "metadata": {**(world.get("p6") or {})["metadata"],
                                                          "deletionTimestamp": "2026-01-01T00:00:00Z"}})
        outcome = reconciler.reconcile(deleting)
        result = outcome.outcome
        if outcome.released:
            break
    assert result == Outcome.DELETED
    assert world.owned(uid) == []


def test_oci_errors_are_classified_once(world: World, ocisim_control: OcisimControl) -> None:
    settings = ClientSettings.fast(endpoint_template=world.ocisim.endpoint_template,
                                   circuit_breaker=CircuitBreakerPolicy(enabled=False))
    factories = FactoryCache(settings)
    reconciler = Reconciler(KubernetesApi(world.api_client), factories, Settings(requeue_seconds=0.1))
    try:
        world.apply("p7")
        ocisim_control.fault(service="streaming", operation="CreateStream", status=429, code="TooManyRequests")
        throttled = reconciler.reconcile(obj(world, "p7"), attempt=3)
        assert throttled.outcome == Outcome.ERROR
        assert throttled.requeue_after == 20  # backoff 5 s doubling, third attempt
        synced = world.condition("p7", "Synced")
        assert synced is not None
        assert (synced["status"], synced["reason"]) == ("False", "Throttled")
        assert "opc-request-id" in synced["message"]
        assert [e.reason for e in throttled.events if e.type == "Warning"] == ["CreateFailed"]

        ocisim_control.clear_faults()
        ocisim_control.fault(service="streaming", operation="CreateStream", status=400, code="InvalidParameter",
                             message="partitions is out of range")
        invalid = reconciler.reconcile(obj(world, "p7"))
        assert invalid.outcome == Outcome.INVALID
        assert invalid.terminal
        assert invalid.requeue_after is None
        synced = world.condition("p7", "Synced")
        assert synced is not None
        assert synced["reason"] == "InvalidSpec"
        assert "partitions is out of range" in synced["message"]

        ocisim_control.clear_faults()
        assert reconciler.reconcile(obj(world, "p7")).outcome == Outcome.CONVERGED
        world.wait_condition("p7", "Synced", "True", "ReconcileSuccess", timeout=1)
    finally:
        factories.close()


def test_deletion_still_works_when_the_spec_no_longer_builds(world: World, reconciler: Reconciler) -> None:
    uid = world.apply("p8")["metadata"]["uid"]
    assert reconciler.reconcile(obj(world, "p8")).outcome == Outcome.CONVERGED
    broken = {"trigger": {"type": "Autoscaling", "autoscaling": {
        "instancePoolId": "ocid1.instancepool.oc1.iad.aaaaaaaapool"}},
        "sources": {**world.spec()["sources"], "schedule": "0 0 1 * 1"}}
    released = False
    for _ in range(20):
        body = world.get("p8") or {}
        body["spec"] = {**body["spec"], **broken}
        body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        outcome = reconciler.reconcile(PipelineObject.from_body(body))
        assert outcome.error is None, outcome.message
        if outcome.released:
            released = True
            break
    assert released
    assert world.owned(uid) == []


def test_events_lost_to_retention_show_in_the_status_and_get_one_warning(world: World, reconciler: Reconciler,
                                                                        ocisim: OcisimServer) -> None:
    """A gap record in the state stream (written by fanout or export when retention dropped events before they
    were delivered) is summed into status.health and announced once, as a Warning Event."""
    world.apply("p1")
    assert reconciler.reconcile(obj(world, "p1")).outcome == Outcome.CONVERGED
    status = (world.get("p1") or {})["status"]
    assert status["health"]["lostToRetentionCount"] == 0
    [state] = [c for c in status["children"] if c["kind"] == "Stream" and c["key"] == "state"]
    factory = make_factory(ocisim, world.region)
    stream = factory.stream_admin(world.region).get_stream(state["ocid"]).data
    producer = StreamProducer(factory.stream(stream.messages_endpoint), stream.id)
    gap = RetentionGap("0", 41, 49)
    producer.put([(gap.key.encode(), orjson.dumps(gap.record(dt.datetime.now(dt.UTC), "siem-export")))])
    result = reconciler.reconcile(obj(world, "p1"))
    assert (world.get("p1") or {})["status"]["health"]["lostToRetentionCount"] == 7
    [warning] = [e for e in result.events if e.reason == "EventsLostToRetention"]
    assert warning.type == "Warning"
    assert "7 event(s)" in warning.message
    assert "retentionHours" in warning.message
    again = reconciler.reconcile(obj(world, "p1"))
    assert not [e for e in again.events if e.reason == "EventsLostToRetention"]  # said once
    factory.close()
