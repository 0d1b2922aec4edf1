"""The operator run by kopf over HTTP against kubesim, acting on ocisim through the real SDK."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import kopf.testing
import kubernetes
import oci
import pytest
import yaml

from siem_operator.children import PIPELINE_UID_TAG
from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import StateStore, health_record
from tests.operator.harness import CRD_FILE, World, metric, secret_body, wait_for

ARGS = ["run", "--standalone", "--all-namespaces", "--verbose", "-m", "siem_operator.handlers"]


@contextlib.contextmanager
def operator() -> Iterator[kopf.testing.KopfRunner]:
    with kopf.testing.KopfRunner(ARGS, timeout=60) as runner:
        yield runner
    failure: BaseException | None = runner.exception
    assert failure is None, runner.output
    assert runner.exit_code == 0, runner.output


def identities(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((i["_kind"], i.get("name") or i.get("displayName") or i.get("secretName")
                    or f"{i.get('topicId')}->{i.get('endpoint')}") for i in items)


def children(world: World, name: str) -> dict[str, str]:
    body = world.get(name) or {}
    return {f"{c['kind']}/{c['key']}": c.get("ocid", "") for c in (body.get("status") or {}).get("children") or []}


def test_apply_ready_drift_update_and_delete(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with operator() as runner:
        uid = world.apply("audit")["metadata"]["uid"]
        world.wait_condition("audit", "Ready", "True", "Available")
        world.wait_condition("audit", "Synced", "True", "ReconcileSuccess")
        body = world.get("audit") or {}
        status = body["status"]
        owned = world.owned(uid)
        assert len(owned) == len(status["children"])
        assert all(count == 1 for count in identities(owned).values())
        assert all(c.get("ocid") for c in status["children"])
        assert status["health"]["regionCount"] == 1  # printer column "Regions"
        assert FINALIZER in body["metadata"]["finalizers"]
        wait_for(lambda: "Created" in world.reasons(uid), 10, "a Created Event")

        # a topic deleted behind the operator's back is re-created by the drift timer, with an Event
        topic = children(world, "audit")["Topic/fetch"]
        factory_client = oci.ons.NotificationControlPlaneClient(
            world.oci_config, service_endpoint=world.ocisim.endpoint(world.region, "notification"))
        factory_client.delete_topic(topic)
        wait_for(lambda: children(world, "audit").get("Topic/fetch") not in ("", topic), 15, "the topic re-created")
        wait_for(lambda: "Recreated" in world.reasons(uid), 10, "a Recreated Event")
        assert sum(1 for i in world.owned(uid) if i["_kind"] == "topics") == 2
        world.wait_condition("audit", "Ready", "True", "Available")

        # a change made outside the operator is reverted by the drift timer, with an Event
        fetch = children(world, "audit")["Function/fetch"]
        functions = oci.functions.FunctionsManagementClient(
            world.oci_config, service_endpoint=world.ocisim.endpoint(world.region, "functions"))
        wanted = functions.get_function(fetch).data.memory_in_mbs
        functions.update_function(fetch, oci.functions.models.UpdateFunctionDetails(memory_in_mbs=wanted * 2))
        wait_for(lambda: functions.get_function(fetch).data.memory_in_mbs == wanted, 15, "the memory reverted")
        wait_for(lambda: any(e.reason == "Updated" and "memory_in_mbs" in e.message for e in world.events(uid)), 10,
                 "an Updated Event")

        # a mutable change is applied in place
        spec = (world.get("audit") or {})["spec"]
        world.patch_spec("audit", {"sources": {**spec["sources"], "schedule": "*/10 * * * *"}})
        wait_for(lambda: any(i.get("recurrenceDetails") == "*/10 * * * *" for i in world.owned(uid)
                             if i["_kind"] == "schedules"), 15, "the schedule updated")
        wait_for(lambda: any(e.reason == "Updated" and "recurrence_details" in e.message for e in world.events(uid)),
                 10, "an Updated Event")
        assert Counter(i["_kind"] for i in world.owned(uid)) == Counter(i["_kind"] for i in owned)

        world.delete("audit")
        wait_for(lambda: world.get("audit") is None, 30, "the SiemPipeline gone")
        assert world.owned(uid) == []
        wait_for(lambda: "Deleted" in world.reasons(uid), 10, "a Deleted Event")
    assert "siem_operator" in caplog.text
    assert "Handler 'reconcile'" in runner.output
    assert_no_secret(world, uid, runner.output + caplog.text)


FINALIZER = "siem.ocisiem.io/finalizer"


def assert_no_secret(world: World, uid: str, logs: str) -> None:
    texts = [logs, json.dumps(world.get("audit") or {})]
    texts += [f"{e.reason} {e.message}" for e in world.events(uid)]
    key_body = "".join(world.private_key.strip().splitlines()[1:-1])[:40]
    for text in texts:
        assert world.hec_token not in text
        assert key_body not in text.replace("\\n", "").replace("\n", "")


def test_retain_leaves_every_child(world: World) -> None:
    with operator():
        uid = world.apply("kept", world.spec(deletionPolicy="Retain"))["metadata"]["uid"]
        world.wait_condition("kept", "Ready", "True", "Available")
        before = identities(world.owned(uid))
        world.delete("kept")
        wait_for(lambda: world.get("kept") is None, 30, "the SiemPipeline gone")
        assert identities(world.owned(uid)) == before
        wait_for(lambda: "Retained" in world.reasons(uid), 10, "a Retained Event")


def test_an_invalid_spec_is_reported_once_without_a_hot_loop(world: World) -> None:
    labels = {"trigger": "change", "outcome": "Invalid"}
    before = metric("siem_operator_reconciles_total", **labels)
    drift_before = sum(metric("siem_operator_reconciles_total", trigger="drift", outcome=o)
                       for o in ("Invalid", "Error", "Converged", "Skipped"))
    with operator():
        spec = world.spec(trigger={"type": "Autoscaling", "autoscaling": {
            "instancePoolId": "ocid1.instancepool.oc1.iad.aaaaaaaapool"}})
        spec["sources"]["schedule"] = "0 0 1 * 1"
        uid = world.apply("bad", spec)["metadata"]["uid"]
        synced = world.wait_condition("bad", "Synced", "False", "InvalidSpec")
        assert "day-of-week" in synced["message"]
        wait_for(lambda: any(e.type == "Warning" and e.reason == "InvalidSpec" for e in world.events(uid)), 10,
                 "a Warning Event")
        time.sleep(3)  # three drift intervals
        assert metric("siem_operator_reconciles_total", **labels) - before == 1
        drift_after = sum(metric("siem_operator_reconciles_total", trigger="drift", outcome=o)
                          for o in ("Invalid", "Error", "Converged", "Skipped"))
        assert drift_after == drift_before
        assert world.owned(uid) == []
        world.delete("bad")  # nothing was created, so nothing holds the finalizer
        wait_for(lambda: world.get("bad") is None, 15, "the invalid SiemPipeline gone")


def test_a_restarted_operator_never_duplicates_children(world: World) -> None:
    world.control.freeze()
    world.control.settings(provisioningDelay=30.0)
    with operator():
        uid = world.apply("crash")["metadata"]["uid"]
        wait_for(lambda: len(world.owned(uid)) >= 3, 15, "the first creates")
    first = identities(world.owned(uid))
    # worst case: every status write of the first run lost
    world.patch_status("crash", {"children": None})
    world.control.settings(provisioningDelay=0.0)
    world.control.advance(60)
    with operator():
        world.wait_condition("crash", "Ready", "True", "Available", timeout=60)
    owned = world.owned(uid)
    assert all(count == 1 for count in identities(owned).values()), identities(owned)
    assert set(first) <= set(identities(owned))
    assert all((i.get("freeformTags") or {}).get(PIPELINE_UID_TAG) == uid for i in owned)


def _without_cel(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [_without_cel(v) for v in node]
    return node


def test_an_immutable_change_is_rejected_at_admission_or_reported_and_nothing_is_replaced(world: World) -> None:
    with operator():
        uid = world.apply("fixed")["metadata"]["uid"]
        world.wait_condition("fixed", "Ready", "True", "Available")
        streams = {i["id"]: i["partitions"] for i in world.owned(uid) if i["_kind"] == "streams"}
        spec = (world.get("fixed") or {})["spec"]
        changed = {"streams": {**spec["streams"], "partitions": spec["streams"]["partitions"] + 1}}
        with pytest.raises(kubernetes.client.ApiException) as rejected:
            world.patch_spec("fixed", changed)
        assert rejected.value.status == 422
        assert "partitions is immutable" in str(rejected.value.body)

        # an older CRD without the rule lets it through: the operator reports it and replaces nothing
        world.kubesim.register_crd(_without_cel(yaml.safe_load(CRD_FILE.read_text())))
        world.patch_spec("fixed", changed)
        synced = world.wait_condition("fixed", "Synced", "False", "ImmutableFieldChanged")
        assert "partitions" in synced["message"]
        assert "create a new SiemPipeline" in synced["message"] or "set the spec back" in synced["message"]
        wait_for(lambda: any(e.type == "Warning" and e.reason == "ImmutableFieldChanged" for e in world.events(uid)),
                 10, "a Warning Event")
        time.sleep(2)  # two drift intervals: still nothing replaced
        assert {i["id"]: i["partitions"] for i in world.owned(uid) if i["_kind"] == "streams"} == streams


def test_suspend_disables_the_trigger_and_ready_says_so(world: World) -> None:
    with operator():
        uid = world.apply("paused", world.spec(suspend=True))["metadata"]["uid"]
        ready = world.wait_condition("paused", "Ready", "False", "Suspended")
        assert "suspend" in ready["message"]
        schedules = [i for i in world.owned(uid) if i["_kind"] == "schedules"]
        assert len(schedules) == 1
        assert schedules[0]["lifecycleState"] != "ACTIVE" or schedules[0].get("isEnabled") is False, schedules[0]
        world.patch_spec("paused", {"suspend": False})
        world.wait_condition("paused", "Ready", "True", "Available")


def test_health_from_the_state_stream_fills_the_printer_columns(world: World) -> None:
    with operator():
        world.apply("healthy")
        world.wait_condition("healthy", "Ready", "True", "Available")
        state_id = children(world, "healthy")["Stream/state"]
        admin = oci.streaming.StreamAdminClient(world.oci_config,
                                                service_endpoint=world.ocisim.endpoint(world.region, "streaming"))
        endpoint = admin.get_stream(state_id).data.messages_endpoint
        client = oci.streaming.StreamClient(world.oci_config, service_endpoint=endpoint)
        store = StateStore(client, state_id, StreamProducer(client, state_id))
        now = dt.datetime.now(dt.UTC)
        store.put({
            "health/fanout": health_record("fanout", now, pairs=1, regions={world.region: {"lagSeconds": 1500}}),
            f"health/fetch/{world.region}": health_record("fetch", now, region=world.region, lastWindow={
                "compartmentId": world.compartment_id, "start": "2026-11-27T03:00:00Z", "end": "2026-11-27T03:05:00Z",
                "track": "live"}),
            "health/export/siem-export": health_record("export", now, exported=42, deadLettered=2),
        })
        health = wait_for(lambda: ((world.get("healthy") or {}).get("status") or {}).get("health", {}).get("lag")
                          and world.get("healthy")["status"]["health"], 15, "health in status")  # type: ignore[index]
        assert health["lag"] == "25m"
        assert health["lagSeconds"] == 1500
        assert health["regionCount"] == 1
        assert health["lastExportTime"]
        assert health["exportedCount"] == 42
        assert health["deadLetteredCount"] == 2
        assert health["regions"][0]["lastExportTime"].startswith("2026-11-27T03:05:00")


def test_a_missing_secret_is_reported_and_recovers_when_it_appears(world: World) -> None:
    world.core.delete_namespaced_secret("splunk-hec", "default")
    with operator():
        uid = world.apply("waiting")["metadata"]["uid"]
        ready = world.wait_condition("waiting", "Ready", "False", "SecretNotFound")
        assert "splunk-hec" in ready["message"]
        assert world.owned(uid) == []
        world.core.create_namespaced_secret("default", secret_body("splunk-hec", {"token": world.hec_token}))
        world.wait_condition("waiting", "Ready", "True", "Available")  # picked up within the drift interval


def test_many_pipelines_at_once(world: World) -> None:
    names = [f"tenant-{i:02d}" for i in range(5)]
    with operator():
        uids = {name: world.apply(name)["metadata"]["uid"] for name in names}
        for name in names:
            world.wait_condition(name, "Ready", "True", "Available", timeout=90)
    per_pipeline = {name: identities(world.owned(uid)) for name, uid in uids.items()}
    sizes = {len(found) for found in per_pipeline.values()}
    assert len(sizes) == 1, sizes
    assert all(count == 1 for found in per_pipeline.values() for count in found.values())
