"""The fault knobs the chaos scenarios turn, each on its own, through the real SDK: a cursor that expires
early, an ONS delivery attempt that fails on the way (and ONS retrying it, then giving up), and the
validation of the new rule fields."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import ControlError, OcisimControl
from ocisim.testing import sdk_client
from tests.emulator.ocisim.ons_support import Receiver, deliveries, drain

S = oci.streaming.models
ons = oci.ons.models


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.close()


def _stream(ocisim: OcisimServer, config: dict[str, Any], name: str) -> tuple[Any, str]:
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, config, service="streaming")
    stream = admin.create_stream(S.CreateStreamDetails(name=name, partitions=1,
                                                       compartment_id=ocisim.tenancy_id)).data
    client = oci.streaming.StreamClient(config, service_endpoint=stream.messages_endpoint,
                                        retry_strategy=oci.retry.NoneRetryStrategy(),
                                        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    return client, stream.id


def _subscribed(ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any], receiver: Receiver,
                name: str) -> tuple[Any, Any, Any]:
    """A topic with a confirmed CUSTOM_HTTPS subscription to ``receiver`` (its confirmation delivered), ocisim's
    clock frozen, and a client that publishes to the topic without retrying: (topic, subscription, publisher)."""
    cp = sdk_client(ocisim, oci.ons.NotificationControlPlaneClient, oci_config, service="notification")
    dp = sdk_client(ocisim, oci.ons.NotificationDataPlaneClient, oci_config, service="notification")
    topic = cp.create_topic(ons.CreateTopicDetails(name=name, compartment_id=ocisim.tenancy_id)).data
    sub = dp.create_subscription(ons.CreateSubscriptionDetails(
        topic_id=topic.topic_id, compartment_id=ocisim.tenancy_id, protocol="CUSTOM_HTTPS",
        endpoint=receiver.url)).data
    ocisim_control.request("POST", f"/ons/subscriptions/{sub.id}/confirm")
    drain(ocisim_control)
    ocisim_control.freeze()
    publish = oci.ons.NotificationDataPlaneClient(
        oci_config, service_endpoint=topic.api_endpoint, retry_strategy=oci.retry.NoneRetryStrategy(),
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    return topic, sub, publish


def test_a_cursor_expires_early_on_its_stream_only(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                   oci_config: dict[str, Any]) -> None:
    client, stream_id = _stream(ocisim, oci_config, "expiring")
    other, other_id = _stream(ocisim, oci_config, "other")
    value = base64.b64encode(b"x").decode()
    for c, sid in ((client, stream_id), (other, other_id)):
        c.put_messages(sid, S.PutMessagesDetails(messages=[S.PutMessagesDetailsEntry(value=value)]))
    rule = ocisim_control.fault(service="streaming", operation="Cursor.expired", resource=stream_id, count=1)
    cursor = client.create_cursor(stream_id, S.CreateCursorDetails(partition="0", type="TRIM_HORIZON")).data.value
    other_cursor = other.create_cursor(other_id, S.CreateCursorDetails(partition="0", type="TRIM_HORIZON")).data.value
    assert len(other.get_messages(other_id, other_cursor).data) == 1  # another stream's cursor is not touched
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.get_messages(stream_id, cursor)
    assert (err.value.status, err.value.code) == (400, "InvalidParameter")
    assert "expired" in err.value.message
    # a new cursor (what a client does about it) reads again; the rule was a one-shot
    cursor = client.create_cursor(stream_id, S.CreateCursorDetails(partition="0", type="TRIM_HORIZON")).data.value
    assert len(client.get_messages(stream_id, cursor).data) == 1
    [listed] = [r for r in ocisim_control.request("GET", "/faults") if r["id"] == rule["id"]]
    assert (listed["hits"], listed["resource"]) == (1, stream_id)


def test_a_failing_delivery_never_reaches_the_subscriber_and_ons_retries_it(
        ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any], receiver: Receiver) -> None:
    topic, sub, publish = _subscribed(ocisim, ocisim_control, oci_config, receiver, "chaos")
    ocisim_control.fault(service="notifications", operation="Delivery", resource=sub.id, status=502, count=1)
    ocisim_control.fault(service="notifications", operation="Delivery", resource=topic.topic_id, action="reset",
                         count=1)
    before = len(receiver.messages())
    message_id = publish.publish_message(topic.topic_id, ons.MessageDetails(body="hello")).data.message_id
    drain(ocisim_control)
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert record["state"] == "RETRY_WAIT"
    assert [(a["status"], a["error"]) for a in record["attempts"]] == [
        (502, "BadGateway: Injected fault."), (None, "connection reset (fault injection)")]
    assert len(receiver.messages()) == before  # neither attempt reached it
    ocisim_control.advance(60)
    drain(ocisim_control)
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert record["state"] == "DELIVERED"
    assert [m["body"] for m in receiver.messages()[before:]] == [b"hello"]


def test_a_delivery_failing_past_the_retry_duration_is_discarded(
        ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any], receiver: Receiver) -> None:
    topic, _, publish = _subscribed(ocisim, ocisim_control, oci_config, receiver, "doomed")
    ocisim_control.fault(service="notifications", operation="Delivery", resource=receiver.url, status=503)
    message_id = publish.publish_message(topic.topic_id, ons.MessageDetails(body="lost")).data.message_id
    for _ in range(130):  # two hours (the default maxRetryDuration) and more, a minute at a time
        ocisim_control.advance(60)
        drain(ocisim_control)
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert record["state"] == "FAILED"
    # attempts at +0, +0 (the immediate retry), +1, +3, +7, +15, +31, +63 and +95 min; +127 is past 120
    assert len(record["attempts"]) == 9
    assert record["reason"] == "discarded after 9 attempt(s): HTTP 503"
    assert receiver.messages() == []


@pytest.mark.parametrize(("rule", "message"), [
    ({"service": "streaming", "operation": "GetMessages", "action": "kill"}, "'kill' applies only"),
    ({"operation": "Delivery", "action": "explode"}, "'action' must be"),
    ({"operation": "Delivery", "count": -1}, "'count' must not be negative"),
])
def test_bad_rules_are_refused(ocisim_control: OcisimControl, rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ControlError, match=message):
        ocisim_control.fault(**rule)


def test_a_catch_all_rule_does_not_kill_functions_or_fail_deliveries(ocisim_control: OcisimControl) -> None:
    from ocisim.faults import FaultInjector, FaultRule

    injector = FaultInjector()
    injector.add(FaultRule(status=500))  # every API call
    assert injector.roll("us-ashburn-1", "streaming", "GetMessages") is not None
    assert injector.roll("us-ashburn-1", "streaming", "PutMessages.entry") is not None
    for service, operation in (("functions", "Invoke.kill"), ("notifications", "Delivery"),
                               ("streaming", "Cursor.expired")):
        assert injector.roll("us-ashburn-1", service, operation, ("ocid1.x",)) is None
    named = injector.add(FaultRule(service="functions", operation="Invoke.kill", action="kill", resource="ocid1.f"))
    assert injector.roll("us-ashburn-1", "functions", "Invoke.kill", ("ocid1.g",)) is None
    assert injector.roll("us-ashburn-1", "functions", "Invoke.kill", ("ocid1.f",)) is named
