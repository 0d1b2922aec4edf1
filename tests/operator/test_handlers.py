"""The operator run by kopf over HTTP against kubesim, acting on ocisim through the real SDK."""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import kopf.testing
import oci
import pytest

from siem_operator.children import PIPELINE_UID_TAG
from tests.operator.harness import World, metric, wait_for

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

        # a mutable change is applied in place
        spec = (world.get("audit") or {})["spec"]
        world.patch_spec("audit", {"sources": {**spec["sources"], "schedule": "*/10 * * * *"}})
        wait_for(lambda: any(i.get("recurrenceDetails") == "*/10 * * * *" for i in world.owned(uid)
                             if i["_kind"] == "schedules"), 15, "the schedule updated")
        wait_for(lambda: "Updated" in world.reasons(uid), 10, "an Updated Event")
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
        import time

        time.sleep(3)  # three drift intervals
        assert metric("siem_operator_reconciles_total", **labels) - before == 1
        drift_after = sum(metric("siem_operator_reconciles_total", trigger="drift", outcome=o)
                          for o in ("Invalid", "Error", "Converged", "Skipped"))
        assert drift_after == drift_before
        assert world.owned(uid) == []


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
