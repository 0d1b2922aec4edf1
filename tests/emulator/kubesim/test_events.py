"""Events: stored once, listed through both APIs (core/v1 and events.k8s.io/v1), selectable by the
object they are about."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest


@pytest.fixture
def core(kubesim_client: Any) -> Any:
    return kubernetes.client.CoreV1Api(kubesim_client)


@pytest.fixture
def events_v1(kubesim_client: Any) -> Any:
    return kubernetes.client.EventsV1Api(kubesim_client)


def core_event(name: str, reason: str, uid: str = "u-1") -> dict[str, Any]:
    return {"metadata": {"generateName": f"{name}."},
            "involvedObject": {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "name": name,
                               "namespace": "default", "uid": uid},
            "reason": reason, "message": f"{reason} happened", "type": "Normal",
            "source": {"component": "kubesim-test"}, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1}


def test_core_events_are_stored_listed_and_selected(core: Any) -> None:
    first = core.create_namespaced_event("default", core_event("g1", "Created"))
    core.create_namespaced_event("default", core_event("g1", "Updated"))
    core.create_namespaced_event("default", core_event("g2", "Created", uid="u-2"))
    assert first.metadata.name.startswith("g1.")
    listed = core.list_namespaced_event("default", field_selector="involvedObject.name=g1")
    assert sorted(e.reason for e in listed.items) == ["Created", "Updated"]
    by_uid = core.list_namespaced_event("default", field_selector="involvedObject.uid=u-2,reason=Created")
    assert [e.involved_object.name for e in by_uid.items] == ["g2"]
    assert len(core.list_event_for_all_namespaces().items) == 3


def test_both_event_apis_share_one_storage(core: Any, events_v1: Any) -> None:
    core.create_namespaced_event("default", core_event("g1", "FromCore"))
    events_v1.create_namespaced_event("default", {
        "metadata": {"name": "from-new-api"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "name": "g1", "namespace": "default",
                      "uid": "u-1"},
        "reason": "FromEventsV1", "note": "posted as events.k8s.io/v1", "type": "Warning", "action": "Check",
        "reportingController": "kubesim.test/controller", "reportingInstance": "kubesim-test-1"})
    as_core = core.list_namespaced_event("default", field_selector="involvedObject.name=g1")
    assert sorted((e.reason, e.message) for e in as_core.items) == [
        ("FromCore", "FromCore happened"), ("FromEventsV1", "posted as events.k8s.io/v1")]
    as_new = events_v1.list_namespaced_event("default", field_selector="regarding.name=g1")
    assert sorted((e.reason, e.note) for e in as_new.items) == [
        ("FromCore", "FromCore happened"), ("FromEventsV1", "posted as events.k8s.io/v1")]
    read = events_v1.read_namespaced_event("from-new-api", "default")
    assert read.regarding.kind == "Gadget"
    assert read.reporting_controller == "kubesim.test/controller"
