"""Events through the real SDK: rules, their validation, and delivery of matching events to actions."""

from __future__ import annotations

import base64
import json
from typing import Any

import oci
import pytest
from oci.events.models import CreateStreamingServiceActionDetails, Rule

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.ocid import new_ocid
from ocisim.testing import sdk_client, swapped_hook
from tests.emulator.ocisim.ons_support import Receiver, deliveries, drain

ev = oci.events.models
CREATE_BUCKET = "com.oraclecloud.objectstorage.createbucket"


@pytest.fixture
def events(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.events.EventsClient:
    return sdk_client(ocisim, oci.events.EventsClient, oci_config, service="events")


@pytest.fixture
def tree(ocisim_control: OcisimControl) -> dict[str, str]:
    """root ─ prod ─ prod-app ; root ─ dev."""
    prod = ocisim_control.add_compartment("prod")["id"]
    return {"prod": prod, "prod-app": ocisim_control.add_compartment("prod-app", prod)["id"],
            "dev": ocisim_control.add_compartment("dev")["id"]}


@pytest.fixture
def stream_puts(ocisim: OcisimServer) -> Any:
    """A fake ``streaming.put`` that records what Events writes."""
    puts: list[tuple[str, str, list[tuple[bytes | None, bytes]]]] = []

    async def fake_put(region: str, stream_id: str, messages: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
        puts.append((region, stream_id, messages))
        return [{"partition": "0", "offset": len(puts) - 1, "error": None, "errorMessage": None}]

    with swapped_hook(ocisim, "streaming.put", fake_put):
        yield puts


def oss(stream_id: str, enabled: bool = True) -> CreateStreamingServiceActionDetails:
    return ev.CreateStreamingServiceActionDetails(action_type="OSS", is_enabled=enabled, stream_id=stream_id,
                                                  description="to the stream")


def make_rule(events: oci.events.EventsClient, compartment_id: str, condition: dict[str, Any] | str,
              actions: list[Any], *, name: str = "rule", enabled: bool = True) -> Rule:
    text = condition if isinstance(condition, str) else json.dumps(condition)
    rule: Rule = events.create_rule(ev.CreateRuleDetails(
        display_name=name, is_enabled=enabled, condition=text, compartment_id=compartment_id,
        actions=ev.ActionDetailsList(actions=actions))).data
    return rule


def emit(control: OcisimControl, compartment_id: str, event_type: str = CREATE_BUCKET, **extra: Any) -> list[str]:
    result = control.request("POST", "/events/emit", {"eventType": event_type, "compartmentId": compartment_id,
                                                      "resourceName": "bucket-1", **extra})
    matched: list[str] = result["matchedRuleIds"]
    return matched


def error_of(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        call(*args, **kwargs)
    return err.value.status, err.value.code, err.value.message


# -- rules ------------------------------------------------------------------------------------------


def test_rule_crud(events: oci.events.EventsClient, ocisim: OcisimServer) -> None:
    root = ocisim.tenancy_id
    stream_id, topic_id, function_id = new_ocid("stream", "iad"), new_ocid("onstopic", "iad"), new_ocid("fnfunc", "iad")
    rule = make_rule(events, root, {"eventType": [CREATE_BUCKET]}, [
        oss(stream_id),
        ev.CreateNotificationServiceActionDetails(action_type="ONS", is_enabled=True, topic_id=topic_id),
        ev.CreateFaaSActionDetails(action_type="FAAS", is_enabled=False, function_id=function_id),
    ], name="buckets")
    assert rule.id.startswith("ocid1.eventrule.oc1.iad.")
    assert (rule.display_name, rule.lifecycle_state, rule.is_enabled) == ("buckets", "ACTIVE", True)
    assert json.loads(rule.condition) == {"eventType": [CREATE_BUCKET]}
    kinds = [(type(a).__name__, a.lifecycle_state, a.is_enabled) for a in rule.actions.actions]
    assert kinds == [("StreamingServiceAction", "ACTIVE", True), ("NotificationServiceAction", "ACTIVE", True),
                     ("FaaSAction", "ACTIVE", False)]
    assert [rule.actions.actions[0].stream_id, rule.actions.actions[1].topic_id,
            rule.actions.actions[2].function_id] == [stream_id, topic_id, function_id]
    assert all(a.id.startswith("ocid1.eventaction.") for a in rule.actions.actions)

    got = events.get_rule(rule.id)
    assert (got.data.id, got.data.condition) == (rule.id, rule.condition)
    assert len(got.headers["etag"]) == 32
    summaries = events.list_rules(root).data
    assert [s.id for s in summaries] == [rule.id]
    assert not hasattr(summaries[0], "actions")

    assert error_of(events.update_rule, rule.id, ev.UpdateRuleDetails(is_enabled=False), if_match="stale")[:2] == (
        412, "NoEtagMatch")
    updated = events.update_rule(rule.id, ev.UpdateRuleDetails(
        display_name="all", condition="{}", actions=ev.ActionDetailsList(actions=[oss(stream_id)])),
        if_match=got.headers["etag"]).data
    assert (updated.display_name, updated.condition, len(updated.actions.actions)) == ("all", "{}", 1)
    assert updated.actions.actions[0].id != rule.actions.actions[0].id

    events.delete_rule(rule.id)
    assert events.get_rule(rule.id).data.lifecycle_state == "DELETED"
    assert events.list_rules(root).data == []
    assert [r.id for r in events.list_rules(root, lifecycle_state="DELETED").data] == [rule.id]
    assert error_of(events.delete_rule, rule.id)[:2] == (404, "NotAuthorizedOrNotFound")


def test_list_rules_pages_sorts_and_filters(events: oci.events.EventsClient, ocisim: OcisimServer,
                                            ocisim_control: OcisimControl, tree: dict[str, str]) -> None:
    ocisim_control.freeze()
    for name in ("b", "c", "a"):
        make_rule(events, tree["prod"], {}, [oss(new_ocid("stream", "iad"))], name=name)
        ocisim_control.advance(1)
    make_rule(events, tree["dev"], {}, [oss(new_ocid("stream", "iad"))], name="other")
    assert [r.display_name for r in events.list_rules(tree["prod"]).data] == ["a", "c", "b"]
    first = events.list_rules(tree["prod"], limit=2, sort_by="DISPLAY_NAME", sort_order="ASC")
    assert [r.display_name for r in first.data] == ["a", "b"]
    every = oci.pagination.list_call_get_all_results(events.list_rules, tree["prod"], limit=1,
                                                     sort_by="TIME_CREATED", sort_order="ASC").data
    assert [r.display_name for r in every] == ["b", "c", "a"]
    assert [r.display_name for r in events.list_rules(tree["prod"], display_name="c").data] == ["c"]
    assert error_of(events.list_rules, tree["prod"], limit=51)[:2] == (400, "InvalidParameter")


def test_rule_lifecycle_and_compartment_move(events: oci.events.EventsClient, ocisim_control: OcisimControl,
                                             tree: dict[str, str], stream_puts: list[Any]) -> None:
    ocisim_control.settings(provisioningDelay=5)
    ocisim_control.freeze()
    rule = make_rule(events, tree["prod"], {}, [oss(new_ocid("stream", "iad"))])
    assert rule.lifecycle_state == "CREATING"
    assert emit(ocisim_control, tree["prod"]) == []  # not acting before it is ACTIVE
    assert error_of(events.update_rule, rule.id, ev.UpdateRuleDetails(is_enabled=False))[:2] == (
        409, "IncorrectState")
    ocisim_control.advance(5)
    assert emit(ocisim_control, tree["prod"]) == [rule.id]
    events.change_rule_compartment(rule.id, ev.ChangeRuleCompartmentDetails(compartment_id=tree["dev"]))
    assert events.get_rule(rule.id).data.compartment_id == tree["dev"]
    assert emit(ocisim_control, tree["prod"]) == []
    events.delete_rule(rule.id)
    assert events.get_rule(rule.id).data.lifecycle_state == "DELETING"
    ocisim_control.advance(5)
    assert events.get_rule(rule.id).data.lifecycle_state == "DELETED"


def test_create_rule_retry_token(events: oci.events.EventsClient, ocisim: OcisimServer) -> None:
    details = ev.CreateRuleDetails(display_name="once", is_enabled=True, condition="{}",
                                   compartment_id=ocisim.tenancy_id,
                                   actions=ev.ActionDetailsList(actions=[oss(new_ocid("stream", "iad"))]))
    first = events.create_rule(details, opc_retry_token="rule-token").data
    assert events.create_rule(details, opc_retry_token="rule-token").data.id == first.id
    assert len(events.list_rules(ocisim.tenancy_id).data) == 1


@pytest.mark.parametrize(("changes", "expected"), [
    ({"condition": '{"eventType": '}, (400, "InvalidParameter", "'condition' is not valid JSON")),
    ({"condition": '["a"]'}, (400, "InvalidParameter", "'condition' must be a JSON object")),
    ({"condition": None}, (400, "MissingParameter", "condition")),
    ({"actions": [{"actionType": "OSS", "isEnabled": True, "streamId": new_ocid("stream", "iad")}] * 11},
     (400, "InvalidParameter", "at most 10 actions")),
    ({"actions": []}, (400, "InvalidParameter", "at least one action")),
    ({"actions": [{"actionType": "OSS", "isEnabled": True, "streamId": new_ocid("onstopic", "iad")}]},
     (400, "InvalidParameter", "must be the OCID of a stream")),
    ({"actions": [{"actionType": "SMS", "isEnabled": True}]}, (400, "InvalidParameter", "actionType")),
    ({"actions": [{"actionType": "ONS", "isEnabled": True}]}, (400, "MissingParameter", "topicId")),
    ({"actions": [{"actionType": "FAAS", "functionId": new_ocid("fnfunc", "iad")}]},
     (400, "MissingParameter", "isEnabled")),
    ({"displayName": None}, (400, "MissingParameter", "displayName")),
    ({"isEnabled": "yes"}, (400, "InvalidParameter", "isEnabled")),
    ({"compartmentId": "ocid1.compartment.oc1..unknown"}, (404, "NotAuthorizedOrNotFound", "")),
])
def test_malformed_rules_are_refused(ocisim: OcisimServer, oci_config: dict[str, Any], changes: dict[str, Any],
                                     expected: tuple[int, str, str]) -> None:
    from tests.support.contract import raw_call

    body: dict[str, Any] = {"displayName": "r", "isEnabled": True, "condition": "{}",
                            "compartmentId": ocisim.tenancy_id,
                            "actions": {"actions": [{"actionType": "OSS", "isEnabled": True,
                                                     "streamId": new_ocid("stream", "iad")}]}}
    for key, value in changes.items():
        if key == "actions":
            body["actions"] = {"actions": value}
        elif value is None:
            body.pop(key)
        else:
            body[key] = value
    response = raw_call(ocisim, oci_config, "POST", "events", "/20181201/rules", body=body)
    assert (response.status_code, response.json()["code"]) == expected[:2]
    assert expected[2] in response.json()["message"]


# -- matching and delivery --------------------------------------------------------------------------


def test_rules_see_their_compartment_and_its_descendants(events: oci.events.EventsClient,
                                                         ocisim_control: OcisimControl, tree: dict[str, str],
                                                         stream_puts: list[Any]) -> None:
    stream_id = new_ocid("stream", "iad")
    rule = make_rule(events, tree["prod"], {"eventType": CREATE_BUCKET, "data": {"resourceName": "bucket-*"}},
                     [oss(stream_id), oss(new_ocid("stream", "iad"), enabled=False)])
    make_rule(events, tree["prod"], {}, [oss(stream_id)], name="off", enabled=False)
    assert emit(ocisim_control, tree["prod"]) == [rule.id]
    assert emit(ocisim_control, tree["prod-app"], "com.oraclecloud.ObjectStorage.CreateBucket") == [rule.id]
    assert emit(ocisim_control, tree["dev"]) == []
    assert emit(ocisim_control, tree["prod"], resourceName="other") == []
    assert emit(ocisim_control, tree["prod"], "com.oraclecloud.objectstorage.deletebucket") == []
    drain(ocisim_control, "events")
    assert [(region, target) for region, target, _ in stream_puts] == [("us-ashburn-1", stream_id)] * 2
    key, value = stream_puts[1][2][0]
    event = json.loads(value)
    assert key is None
    assert (event["eventType"], event["data"]["compartmentId"], event["cloudEventsVersion"]) == (
        "com.oraclecloud.ObjectStorage.CreateBucket", tree["prod-app"], "0.1")
    logged = deliveries(ocisim_control, "events", ruleId=rule.id)
    assert [(d["state"], d["actionType"], d["result"]["offset"]) for d in logged] == [
        ("DELIVERED", "OSS", 0), ("DELIVERED", "OSS", 1)]


def test_rules_only_see_events_of_their_region(events: oci.events.EventsClient, ocisim: OcisimServer,
                                               oci_config: dict[str, Any], ocisim_control: OcisimControl,
                                               stream_puts: list[Any]) -> None:
    phoenix = sdk_client(ocisim, oci.events.EventsClient, oci_config, service="events", region="us-phoenix-1")
    rule = make_rule(phoenix, ocisim.tenancy_id, {}, [oss(new_ocid("stream", "phx"))])
    assert emit(ocisim_control, ocisim.tenancy_id) == []
    assert emit(ocisim_control, ocisim.tenancy_id, region="us-phoenix-1") == [rule.id]
    assert events.list_rules(ocisim.tenancy_id).data == []


def test_oss_action_writes_the_event_to_a_real_stream(events: oci.events.EventsClient, ocisim: OcisimServer,
                                                      oci_config: dict[str, Any],
                                                      ocisim_control: OcisimControl) -> None:
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(
        name="events", partitions=1, compartment_id=ocisim.tenancy_id)).data
    rule = make_rule(events, ocisim.tenancy_id, {"eventType": CREATE_BUCKET}, [oss(stream.id)])
    missing = make_rule(events, ocisim.tenancy_id, {"eventType": CREATE_BUCKET}, [oss(new_ocid("stream", "iad"))],
                        name="dangling")
    emit(ocisim_control, ocisim.tenancy_id)
    drain(ocisim_control, "events")
    messages = ocisim_control.request("GET", f"/streaming/streams/{stream.id}/messages")
    values = [json.loads(base64.b64decode(m["value"])) for m in messages]
    assert [v["eventType"] for v in values] == [CREATE_BUCKET]
    [ok] = deliveries(ocisim_control, "events", ruleId=rule.id)
    assert ok["state"] == "DELIVERED"
    [failed] = deliveries(ocisim_control, "events", ruleId=missing.id)
    assert failed["state"] == "FAILED"
    assert failed["error"].startswith("404 NotAuthorizedOrNotFound")


def test_ons_action_publishes_the_event(events: oci.events.EventsClient, ocisim: OcisimServer,
                                        oci_config: dict[str, Any], ocisim_control: OcisimControl) -> None:
    ons = oci.ons.models
    cp = sdk_client(ocisim, oci.ons.NotificationControlPlaneClient, oci_config, service="notification")
    dp = sdk_client(ocisim, oci.ons.NotificationDataPlaneClient, oci_config, service="notification")
    topic = cp.create_topic(ons.CreateTopicDetails(name="events", compartment_id=ocisim.tenancy_id)).data
    receiver = Receiver().start()
    try:
        sub = dp.create_subscription(ons.CreateSubscriptionDetails(
            topic_id=topic.topic_id, compartment_id=ocisim.tenancy_id, protocol="CUSTOM_HTTPS",
            endpoint=receiver.url)).data
        ocisim_control.request("POST", f"/ons/subscriptions/{sub.id}/confirm")
        make_rule(events, ocisim.tenancy_id, {"eventType": CREATE_BUCKET}, [
            ev.CreateNotificationServiceActionDetails(action_type="ONS", is_enabled=True, topic_id=topic.topic_id)])
        emit(ocisim_control, ocisim.tenancy_id)
        drain(ocisim_control, "events")
        drain(ocisim_control, "ons")
        [message] = receiver.messages()
    finally:
        receiver.close()
    assert message["headers"]["Content-Type"] == "application/json"
    assert json.loads(message["body"])["eventType"] == CREATE_BUCKET
    [record] = deliveries(ocisim_control, "ons", kind="MESSAGE")
    assert record["title"] == f"OCI Event Notification: {CREATE_BUCKET}"


def test_faas_action_invokes_the_function(events: oci.events.EventsClient, ocisim: OcisimServer,
                                          ocisim_control: OcisimControl) -> None:
    calls: list[dict[str, Any]] = []

    async def fake_invoke(region: str, function_id: str, body: bytes, headers: dict[str, str] | None = None,
                          detached: bool = False, intent: str = "httprequest") -> tuple[int, bytes, dict[str, str]]:
        calls.append({"function_id": function_id, "event": json.loads(body), "detached": detached,
                      "intent": intent})
        return (200 if len(calls) == 1 else 504), b"", {}

    function_id = new_ocid("fnfunc", "iad")
    rule = make_rule(events, ocisim.tenancy_id, {}, [
        ev.CreateFaaSActionDetails(action_type="FAAS", is_enabled=True, function_id=function_id)])
    with swapped_hook(ocisim, "functions.invoke", fake_invoke):
        emit(ocisim_control, ocisim.tenancy_id)
        emit(ocisim_control, ocisim.tenancy_id)
        drain(ocisim_control, "events")
    assert [(c["function_id"], c["detached"], c["intent"]) for c in calls] == [(function_id, False, "cloudevent")] * 2
    assert calls[0]["event"]["data"]["resourceName"] == "bucket-1"
    states = sorted((d["state"], d["error"]) for d in deliveries(ocisim_control, "events", ruleId=rule.id))
    assert states == [("DELIVERED", None), ("FAILED", "504 FunctionInvokeFailed: The function answered 504.")]


def test_services_emit_resource_events(events: oci.events.EventsClient, ocisim: OcisimServer,
                                       oci_config: dict[str, Any], ocisim_control: OcisimControl,
                                       stream_puts: list[Any]) -> None:
    make_rule(events, ocisim.tenancy_id, {"eventType": ["com.oraclecloud.notification.*",
                                                        "com.oraclecloud.eventsservice.*"]},
              [oss(new_ocid("stream", "iad"))], name="watcher")
    cp = sdk_client(ocisim, oci.ons.NotificationControlPlaneClient, oci_config, service="notification")
    topic = cp.create_topic(oci.ons.models.CreateTopicDetails(name="t", compartment_id=ocisim.tenancy_id)).data
    cp.delete_topic(topic.topic_id)
    other = make_rule(events, ocisim.tenancy_id, {"eventType": "none"}, [oss(new_ocid("stream", "iad"))],
                      name="other")
    drain(ocisim_control, "events")
    seen = [json.loads(messages[0][1]) for _, _, messages in stream_puts]
    assert [(e["eventType"], e["data"]["resourceId"]) for e in seen] == [
        ("com.oraclecloud.notification.createtopic", topic.topic_id),
        ("com.oraclecloud.notification.deletetopic", topic.topic_id),
        ("com.oraclecloud.eventsservice.createrule", other.id),
    ]
    assert seen[0]["data"]["resourceName"] == "t"


def test_control_emit_validates_its_input(ocisim_control: OcisimControl) -> None:
    from ocisim.controlclient import ControlError

    with pytest.raises(ControlError, match="400"):
        ocisim_control.request("POST", "/events/emit", {"compartmentId": "x"})
    with pytest.raises(ControlError, match="404"):
        ocisim_control.request("POST", "/events/emit", {"eventType": "a", "compartmentId": "ocid1.compartment..x"})
    result = ocisim_control.request("POST", "/events/emit", {"event": {"eventType": "a"}})
    assert result["matchedRuleIds"] == []


def test_emit_hook_drops_an_event_that_is_not_json(events: oci.events.EventsClient, ocisim: OcisimServer,
                                                   ocisim_control: OcisimControl, stream_puts: list[Any]) -> None:
    make_rule(events, ocisim.tenancy_id, {}, [oss(new_ocid("stream", "iad"))])
    broken = {"eventType": "x", "extensions": {"compartmentId": ocisim.tenancy_id}, "data": {"when": object()}}
    ocisim.run_in_loop(ocisim.world.call, "events.emit", "us-ashburn-1", broken)
    drain(ocisim_control, "events")
    assert stream_puts == []
    assert deliveries(ocisim_control, "events") == []
