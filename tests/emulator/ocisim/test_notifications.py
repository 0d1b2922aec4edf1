"""Notifications through the real SDK: topics, subscriptions, their quirks, publishing and delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import oci
import pytest
import requests
from oci.ons.models import NotificationTopic, Subscription

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.errors import OciError
from ocisim.ocid import new_ocid
from ocisim.testing import sdk_client, swapped_hook
from tests.emulator.ocisim.ons_support import Receiver, deliveries, drain
from tests.support.contract import raw_call

ons = oci.ons.models
DEFAULT_POLICY = {"backoffRetryPolicy": {"maxRetryDuration": 7_200_000, "policyType": "EXPONENTIAL"}}


@pytest.fixture
def cp(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.ons.NotificationControlPlaneClient:
    return sdk_client(ocisim, oci.ons.NotificationControlPlaneClient, oci_config, service="notification")


@pytest.fixture
def dp(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.ons.NotificationDataPlaneClient:
    return sdk_client(ocisim, oci.ons.NotificationDataPlaneClient, oci_config, service="notification")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.close()


def publisher(topic: NotificationTopic, config: dict[str, Any]) -> oci.ons.NotificationDataPlaneClient:
    """The data-plane client the way real code builds it: on the topic's ``apiEndpoint``."""
    return oci.ons.NotificationDataPlaneClient(config, service_endpoint=topic.api_endpoint,
                                               retry_strategy=oci.retry.NoneRetryStrategy(),
                                               circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())


def make_topic(cp: oci.ons.NotificationControlPlaneClient, compartment_id: str, name: str = "alerts",
               **extra: Any) -> NotificationTopic:
    topic: NotificationTopic = cp.create_topic(
        ons.CreateTopicDetails(name=name, compartment_id=compartment_id, **extra)).data
    return topic


def subscribe(dp: oci.ons.NotificationDataPlaneClient, topic: NotificationTopic, protocol: str,
              endpoint: str) -> Subscription:
    sub: Subscription = dp.create_subscription(ons.CreateSubscriptionDetails(
        topic_id=topic.topic_id, compartment_id=topic.compartment_id, protocol=protocol, endpoint=endpoint)).data
    return sub


def confirm_with_link(receiver: Receiver) -> dict[str, Any]:
    """Do what a subscriber does: open the confirmation URL, unsigned."""
    url = receiver.messages("SubscriptionConfirmation")[-1]["headers"]["X-OCI-NS-ConfirmationURL"]
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def error_of(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        call(*args, **kwargs)
    return err.value.status, err.value.code


# -- topics -----------------------------------------------------------------------------------------


def test_topic_crud_and_quirks(cp: oci.ons.NotificationControlPlaneClient, ocisim: OcisimServer) -> None:
    root = ocisim.tenancy_id
    topic = make_topic(cp, root, description="pipeline alerts", freeform_tags={"team": "sec"})
    assert topic.topic_id.startswith("ocid1.onstopic.oc1.iad.")
    assert not hasattr(topic, "id")
    assert (topic.name, topic.lifecycle_state, topic.description) == ("alerts", "ACTIVE", "pipeline alerts")
    assert topic.api_endpoint == ocisim.endpoint("us-ashburn-1", "notification")
    assert len(topic.short_topic_id) == 10
    assert topic.freeform_tags == {"team": "sec"}

    got = cp.get_topic(topic.topic_id)
    assert got.data.topic_id == topic.topic_id
    assert got.headers["etag"] == topic.etag
    assert error_of(cp.update_topic, topic.topic_id, ons.TopicAttributesDetails(description="x"),
                    if_match="stale") == (412, "NoEtagMatch")
    updated = cp.update_topic(topic.topic_id, ons.TopicAttributesDetails(description="changed"),
                              if_match=topic.etag).data
    assert (updated.description, updated.freeform_tags) == ("changed", {"team": "sec"})
    assert updated.etag != topic.etag

    assert error_of(make_topic, cp, root) == (409, "NotAuthorizedOrResourceAlreadyExists")
    cp.delete_topic(topic.topic_id)
    assert error_of(cp.get_topic, topic.topic_id) == (404, "NotAuthorizedOrNotFound")
    assert make_topic(cp, root).topic_id != topic.topic_id  # the name is free again


def test_list_topics_filters_sorts_and_pages(cp: oci.ons.NotificationControlPlaneClient, ocisim: OcisimServer,
                                             ocisim_control: OcisimControl) -> None:
    other = ocisim_control.add_compartment("other")["id"]
    ocisim_control.freeze()
    names = []
    for i in range(5):
        names.append(make_topic(cp, ocisim.tenancy_id, f"t{i}").name)
        ocisim_control.advance(1)
    make_topic(cp, other, "elsewhere")
    first = cp.list_topics(ocisim.tenancy_id, limit=2)
    assert [t.name for t in first.data] == ["t4", "t3"]  # newest first by default
    assert first.has_next_page
    everything = oci.pagination.list_call_get_all_results(cp.list_topics, ocisim.tenancy_id, limit=2,
                                                          sort_order="ASC").data
    assert [t.name for t in everything] == names
    assert [t.name for t in cp.list_topics(ocisim.tenancy_id, name="t2").data] == ["t2"]
    assert cp.list_topics(ocisim.tenancy_id, lifecycle_state="CREATING").data == []
    assert [t.name for t in cp.list_topics(other).data] == ["elsewhere"]
    assert error_of(cp.list_topics, "ocid1.compartment.oc1..nope") == (404, "NotAuthorizedOrNotFound")


def test_topic_lifecycle_follows_the_virtual_clock(cp: oci.ons.NotificationControlPlaneClient,
                                                   oci_config: dict[str, Any], ocisim: OcisimServer,
                                                   ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(provisioningDelay=30)
    ocisim_control.freeze()
    topic = make_topic(cp, ocisim.tenancy_id)
    assert topic.lifecycle_state == "CREATING"
    message = ons.MessageDetails(body="too early")
    assert error_of(publisher(topic, oci_config).publish_message, topic.topic_id, message) == (409, "IncorrectState")
    ocisim_control.advance(30)
    assert cp.get_topic(topic.topic_id).data.lifecycle_state == "ACTIVE"
    cp.delete_topic(topic.topic_id)
    assert cp.get_topic(topic.topic_id).data.lifecycle_state == "DELETING"
    assert error_of(cp.delete_topic, topic.topic_id) == (409, "IncorrectState")
    ocisim_control.advance(30)
    assert error_of(cp.get_topic, topic.topic_id) == (404, "NotAuthorizedOrNotFound")


def test_create_topic_retry_token_and_bad_input(cp: oci.ons.NotificationControlPlaneClient, ocisim: OcisimServer,
                                                oci_config: dict[str, Any]) -> None:
    details = ons.CreateTopicDetails(name="once", compartment_id=ocisim.tenancy_id)
    first = cp.create_topic(details, opc_retry_token="token-1").data
    assert cp.create_topic(details, opc_retry_token="token-1").data.topic_id == first.topic_id
    assert error_of(cp.create_topic, ons.CreateTopicDetails(name="bad name!", compartment_id=ocisim.tenancy_id)) == (
        400, "InvalidParameter")
    assert error_of(cp.create_topic, ons.CreateTopicDetails(compartment_id=ocisim.tenancy_id)) == (
        400, "MissingParameter")
    assert error_of(cp.create_topic, ons.CreateTopicDetails(name="x")) == (400, "MissingParameter")
    bad = raw_call(ocisim, oci_config, "POST", "notification", "/20181201/topics", body=["not", "an", "object"])
    assert (bad.status_code, bad.json()["code"]) == (400, "CannotParseRequest")


# -- subscriptions ----------------------------------------------------------------------------------


def test_function_subscription_is_active_and_keeps_the_quirks(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze("2026-03-01T12:00:00Z")
    topic = make_topic(cp, ocisim.tenancy_id)
    function_id = new_ocid("fnfunc", "iad")
    sub = subscribe(dp, topic, "ORACLE_FUNCTIONS", function_id)
    assert (sub.lifecycle_state, sub.endpoint, sub.topic_id) == ("ACTIVE", function_id, topic.topic_id)
    assert sub.id.startswith("ocid1.onssubscription.oc1.iad.")
    assert isinstance(sub.deliver_policy, str)
    assert json.loads(sub.deliver_policy) == DEFAULT_POLICY
    assert sub.created_time == 1_772_366_400_000

    summaries = dp.list_subscriptions(ocisim.tenancy_id, topic_id=topic.topic_id).data
    assert [s.id for s in summaries] == [sub.id]
    assert summaries[0].delivery_policy.backoff_retry_policy.max_retry_duration == 7_200_000

    policy = ons.DeliveryPolicy(backoff_retry_policy=ons.BackoffRetryPolicy(max_retry_duration=600_000,
                                                                            policy_type="EXPONENTIAL"))
    updated = dp.update_subscription(sub.id, ons.UpdateSubscriptionDetails(delivery_policy=policy),
                                     if_match=sub.etag).data
    assert isinstance(updated, ons.UpdateSubscriptionDetails)
    assert updated.delivery_policy.backoff_retry_policy.max_retry_duration == 600_000
    assert json.loads(dp.get_subscription(sub.id).data.deliver_policy)["backoffRetryPolicy"]["maxRetryDuration"] == (
        600_000)

    too_long = ons.DeliveryPolicy(backoff_retry_policy=ons.BackoffRetryPolicy(max_retry_duration=7_200_001,
                                                                              policy_type="EXPONENTIAL"))
    assert error_of(dp.update_subscription, sub.id, ons.UpdateSubscriptionDetails(delivery_policy=too_long)) == (
        400, "InvalidParameter")
    assert error_of(subscribe, dp, topic, "ORACLE_FUNCTIONS", function_id) == (
        409, "NotAuthorizedOrResourceAlreadyExists")

    dp.delete_subscription(sub.id)
    assert dp.get_subscription(sub.id).data.lifecycle_state == "DELETED"
    assert dp.list_subscriptions(ocisim.tenancy_id).data == []
    assert error_of(dp.delete_subscription, sub.id) == (404, "NotAuthorizedOrNotFound")


@pytest.mark.parametrize(("protocol", "endpoint"), [
    ("ORACLE_FUNCTIONS", "https://example.com/not-a-function"),
    ("CUSTOM_HTTPS", "ftp://example.com"),
    ("EMAIL", "not-an-address"),
    ("SMS", "0123"),
    ("CARRIER_PIGEON", "coop"),
])
def test_subscription_endpoints_are_checked(cp: oci.ons.NotificationControlPlaneClient,
                                            dp: oci.ons.NotificationDataPlaneClient, ocisim: OcisimServer,
                                            protocol: str, endpoint: str) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    assert error_of(subscribe, dp, topic, protocol, endpoint) == (400, "InvalidParameter")


def test_subscription_to_a_missing_topic(dp: oci.ons.NotificationDataPlaneClient, ocisim: OcisimServer) -> None:
    details = ons.CreateSubscriptionDetails(topic_id=new_ocid("onstopic", "iad"), compartment_id=ocisim.tenancy_id,
                                            protocol="EMAIL", endpoint="a@example.com")
    assert error_of(dp.create_subscription, details) == (404, "NotAuthorizedOrNotFound")


def test_https_subscription_is_confirmed_through_its_link(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        ocisim: OcisimServer, ocisim_control: OcisimControl, receiver: Receiver) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "CUSTOM_HTTPS", receiver.url)
    assert sub.lifecycle_state == "PENDING"
    drain(ocisim_control)
    [request] = receiver.messages("SubscriptionConfirmation")
    headers = request["headers"]
    assert (headers["X-OCI-NS-TopicOcid"], headers["X-OCI-NS-SubscriptionId"]) == (topic.topic_id, sub.id)
    link = headers["X-OCI-NS-ConfirmationURL"]
    assert json.loads(request["body"])["ConfirmationURL"] == link
    assert link.startswith(f"{ocisim.endpoint('us-ashburn-1', 'notification')}/20181201/subscriptions/{sub.id}"
                           "/confirmation?token=")

    token = parse_qs(urlparse(link).query)["token"][0]
    assert error_of(dp.get_confirm_subscription, sub.id, "wrong", "CUSTOM_HTTPS") == (400, "InvalidParameter")
    assert error_of(dp.get_confirm_subscription, sub.id, token, "EMAIL") == (400, "InvalidParameter")
    assert dp.get_subscription(sub.id).data.lifecycle_state == "PENDING"

    result = confirm_with_link(receiver)
    assert (result["subscriptionId"], result["topicName"], result["endpoint"]) == (sub.id, "alerts", receiver.url)
    assert dp.get_subscription(sub.id).data.lifecycle_state == "ACTIVE"
    signed = dp.get_confirm_subscription(sub.id, token, "CUSTOM_HTTPS").data  # the SDK's own call, signed
    assert signed.subscription_id == sub.id
    assert error_of(dp.resend_subscription_confirmation, sub.id) == (409, "IncorrectState")

    unsubscribe = requests.get(result["unsubscribeUrl"], timeout=10)
    assert unsubscribe.status_code == 200
    assert dp.get_subscription(sub.id).data.lifecycle_state == "DELETED"


def test_resend_confirmation_and_unsigned_links_need_the_token(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        ocisim: OcisimServer, ocisim_control: OcisimControl, receiver: Receiver) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "HTTPS", receiver.url)
    assert dp.resend_subscription_confirmation(sub.id).data.lifecycle_state == "PENDING"
    drain(ocisim_control)
    assert len(receiver.messages("SubscriptionConfirmation")) == 2
    base = f"{ocisim.endpoint('us-ashburn-1', 'notification')}/20181201/subscriptions/{sub.id}"
    unsigned = requests.get(f"{base}/confirmation", params={"token": "guess", "protocol": "HTTPS"}, timeout=10)
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "InvalidParameter")
    # only the two link operations take unsigned requests
    assert requests.get(base, timeout=10).status_code == 401


def test_email_subscriptions_are_simulated(cp: oci.ons.NotificationControlPlaneClient,
                                           dp: oci.ons.NotificationDataPlaneClient, oci_config: dict[str, Any],
                                           ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "EMAIL", "soc@example.com")
    assert sub.lifecycle_state == "PENDING"
    [confirmation] = deliveries(ocisim_control, subscriptionId=sub.id)
    assert (confirmation["kind"], confirmation["state"]) == ("CONFIRMATION", "SIMULATED")
    assert ocisim_control.request("POST", f"/ons/subscriptions/{sub.id}/confirm")["lifecycleState"] == "ACTIVE"
    message_id = publisher(topic, oci_config).publish_message(topic.topic_id, ons.MessageDetails(
        title="hello", body="world")).data.message_id
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert (record["state"], record["title"], record["body"]) == ("SIMULATED", "hello", "world")


# -- publishing and delivery ------------------------------------------------------------------------


def test_publish_delivers_to_an_https_subscriber_with_the_ons_headers(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        oci_config: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl, receiver: Receiver) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    subscribe(dp, topic, "CUSTOM_HTTPS", receiver.url)
    drain(ocisim_control)
    confirm_with_link(receiver)
    ocisim_control.freeze("2026-03-01T12:00:00Z")
    result = publisher(topic, oci_config).publish_message(
        topic.topic_id, ons.MessageDetails(title="t", body='{"from": 1, "to": 2}'), message_type="RAW_TEXT").data
    assert len(result.message_id) == 36
    assert result.time_stamp.isoformat() == "2026-03-01T12:00:00+00:00"
    drain(ocisim_control)
    [message] = receiver.messages()
    assert message["body"] == b'{"from": 1, "to": 2}'
    headers = message["headers"]
    assert headers["X-OCI-NS-MessageId"] == result.message_id
    assert (headers["X-OCI-NS-TopicOcid"], headers["X-OCI-NS-TopicName"]) == (topic.topic_id, "alerts")
    assert headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert headers["X-OCI-NS-Timestamp"] == "2026-03-01T12:00:00.000+0000"
    assert "/unsubscription?token=" in headers["X-OCI-NS-UnsubscribeURL"]


def test_failed_deliveries_are_retried_on_the_virtual_clock(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        oci_config: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl, receiver: Receiver) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "CUSTOM_HTTPS", receiver.url)
    drain(ocisim_control)
    confirm_with_link(receiver)
    ocisim_control.freeze()
    receiver.statuses = [500, 503]
    message_id = publisher(topic, oci_config).publish_message(topic.topic_id, ons.MessageDetails(
        body="retry me")).data.message_id
    drain(ocisim_control)
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert record["state"] == "RETRY_WAIT"  # attempt 1 failed, the immediate retry too
    assert [a["status"] for a in record["attempts"]] == [500, 503]
    ocisim_control.advance(59)
    drain(ocisim_control)
    assert len(receiver.messages()) == 2
    ocisim_control.advance(1)  # the backoff's first step: one minute
    drain(ocisim_control)
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert (record["state"], [a["status"] for a in record["attempts"]]) == ("DELIVERED", [500, 503, 200])
    assert [m["body"] for m in receiver.messages()] == [b"retry me"] * 3
    assert record["subscriptionId"] == sub.id


def test_deliveries_are_discarded_after_the_retry_duration(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        oci_config: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl, receiver: Receiver) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "CUSTOM_HTTPS", receiver.url)
    drain(ocisim_control)
    confirm_with_link(receiver)
    policy = ons.DeliveryPolicy(backoff_retry_policy=ons.BackoffRetryPolicy(max_retry_duration=150_000,
                                                                            policy_type="EXPONENTIAL"))
    dp.update_subscription(sub.id, ons.UpdateSubscriptionDetails(delivery_policy=policy))
    ocisim_control.freeze()
    receiver.statuses = [500] * 10
    message_id = publisher(topic, oci_config).publish_message(topic.topic_id, ons.MessageDetails(
        body="doomed")).data.message_id
    drain(ocisim_control)
    ocisim_control.advance(60)
    drain(ocisim_control)  # attempt 3 at +60 s fails; the next (+180 s) would be past 150 s
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert record["state"] == "FAILED"
    assert len(record["attempts"]) == 3
    assert record["reason"] == "discarded after 3 attempt(s): HTTP 500"
    ocisim_control.advance(3600)
    drain(ocisim_control)
    assert len(receiver.messages()) == 3


def test_deleting_the_topic_cancels_pending_retries(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        oci_config: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl, receiver: Receiver) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "CUSTOM_HTTPS", receiver.url)
    drain(ocisim_control)
    confirm_with_link(receiver)
    ocisim_control.freeze()
    receiver.statuses = [500, 500]
    publisher(topic, oci_config).publish_message(topic.topic_id, ons.MessageDetails(body="late"))
    drain(ocisim_control)
    cp.delete_topic(topic.topic_id)
    assert dp.get_subscription(sub.id).data.lifecycle_state == "DELETED"
    ocisim_control.advance(120)
    drain(ocisim_control)
    [record] = deliveries(ocisim_control, kind="MESSAGE")
    assert (record["state"], len(record["attempts"])) == ("CANCELED", 2)
    assert len(receiver.messages()) == 2


def test_function_subscribers_are_invoked_through_the_functions_hook(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        oci_config: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    calls: list[dict[str, Any]] = []
    answers = [502, 200]

    async def fake_invoke(region: str, function_id: str, body: bytes, headers: dict[str, str] | None = None,
                          detached: bool = False, intent: str = "cloudevent") -> tuple[int, bytes, dict[str, str]]:
        calls.append({"region": region, "function_id": function_id, "body": body, "headers": headers,
                      "detached": detached})
        return answers.pop(0), b"", {}

    topic = make_topic(cp, ocisim.tenancy_id)
    function_id = new_ocid("fnfunc", "iad")
    subscribe(dp, topic, "ORACLE_FUNCTIONS", function_id)
    with swapped_hook(ocisim, "functions.invoke", fake_invoke):
        message_id = publisher(topic, oci_config).publish_message(topic.topic_id, ons.MessageDetails(
            body='{"window": "2026-03-01T12:00Z"}')).data.message_id
        drain(ocisim_control)
    assert [(c["region"], c["function_id"], c["body"], c["detached"]) for c in calls] == [
        ("us-ashburn-1", function_id, b'{"window": "2026-03-01T12:00Z"}', False)] * 2
    assert calls[0]["headers"]["X-OCI-NS-MessageId"] == message_id
    [record] = deliveries(ocisim_control, messageId=message_id)
    assert (record["state"], [a["status"] for a in record["attempts"]]) == ("DELIVERED", [502, 200])


def test_function_delivery_without_the_function(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient,
        oci_config: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    async def missing_function(*_args: Any, **_kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
        raise OciError(404, "NotAuthorizedOrNotFound", "no such function")

    topic = make_topic(cp, ocisim.tenancy_id)
    subscribe(dp, topic, "ORACLE_FUNCTIONS", new_ocid("fnfunc", "iad"))
    ocisim_control.freeze()
    with swapped_hook(ocisim, "functions.invoke", missing_function):
        publisher(topic, oci_config).publish_message(topic.topic_id, ons.MessageDetails(body="x"))
        drain(ocisim_control)
    [record] = deliveries(ocisim_control, kind="MESSAGE")
    assert record["state"] == "RETRY_WAIT"
    assert record["attempts"][0]["error"] == "NotAuthorizedOrNotFound: no such function"


def test_publish_limits(cp: oci.ons.NotificationControlPlaneClient, oci_config: dict[str, Any],
                        ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    client = publisher(topic, oci_config)
    assert client.publish_message(topic.topic_id, ons.MessageDetails(body="x" * 65_536)).status == 200
    assert error_of(client.publish_message, topic.topic_id, ons.MessageDetails(body="x" * 65_537)) == (
        400, "InvalidParameter")
    assert error_of(client.publish_message, topic.topic_id, ons.MessageDetails(title="é", body="x" * 65_535)) == (
        400, "InvalidParameter")
    assert error_of(client.publish_message, topic.topic_id, ons.MessageDetails(title="no body")) == (
        400, "MissingParameter")
    assert error_of(client.publish_message, topic.topic_id, ons.MessageDetails(body='{"no": "default"}'),
                    message_type="JSON") == (400, "InvalidParameter")
    ok = client.publish_message(topic.topic_id, ons.MessageDetails(body='{"default": "hi"}'), message_type="JSON")
    assert ok.status == 200
    assert error_of(client.publish_message, new_ocid("onstopic", "iad"), ons.MessageDetails(body="x")) == (
        404, "NotAuthorizedOrNotFound")


def test_publish_rate_limit_per_topic(cp: oci.ons.NotificationControlPlaneClient, oci_config: dict[str, Any],
                                      ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    busy, quiet = make_topic(cp, ocisim.tenancy_id, "busy"), make_topic(cp, ocisim.tenancy_id, "quiet")
    client = publisher(busy, oci_config)
    message = ons.MessageDetails(body="tick")
    for _ in range(61):  # off by default
        client.publish_message(busy.topic_id, message)
    ocisim_control.settings(onsPublishLimit=True)
    ocisim_control.freeze()
    for _ in range(60):
        client.publish_message(busy.topic_id, message)
    assert error_of(client.publish_message, busy.topic_id, message) == (429, "TooManyRequests")
    assert client.publish_message(quiet.topic_id, message).status == 200
    ocisim_control.advance(60)
    assert client.publish_message(busy.topic_id, message).status == 200


def test_other_services_publish_through_the_hook(cp: oci.ons.NotificationControlPlaneClient, ocisim: OcisimServer,
                                                 ocisim_control: OcisimControl) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    message_id = ocisim.run_in_loop(ocisim.world.call, "ons.publish", "us-ashburn-1", topic.topic_id, "{}",
                                    "title", "JSON")
    assert len(message_id) == 36
    with pytest.raises(OciError) as err:
        ocisim.run_in_loop(ocisim.world.call, "ons.publish", "us-phoenix-1", topic.topic_id, "{}")
    assert err.value.status == 404


def test_inventory_lists_topics_and_subscriptions(cp: oci.ons.NotificationControlPlaneClient,
                                                  dp: oci.ons.NotificationDataPlaneClient, ocisim: OcisimServer,
                                                  ocisim_control: OcisimControl) -> None:
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "EMAIL", "a@example.com")
    kinds = ocisim_control.inventory()["regions"]["us-ashburn-1"]
    assert [t["topicId"] for t in kinds["topics"]] == [topic.topic_id]
    assert [s["id"] for s in kinds["subscriptions"]] == [sub.id]


def test_topics_and_subscriptions_move_between_compartments(
        cp: oci.ons.NotificationControlPlaneClient, dp: oci.ons.NotificationDataPlaneClient, ocisim: OcisimServer,
        ocisim_control: OcisimControl) -> None:
    other = ocisim_control.add_compartment("other")["id"]
    topic = make_topic(cp, ocisim.tenancy_id)
    sub = subscribe(dp, topic, "EMAIL", "a@example.com")
    cp.change_topic_compartment(topic.topic_id, ons.ChangeCompartmentDetails(compartment_id=other))
    dp.change_subscription_compartment(sub.id, ons.ChangeCompartmentDetails(compartment_id=other))
    assert [t.topic_id for t in cp.list_topics(other).data] == [topic.topic_id]
    assert cp.list_topics(ocisim.tenancy_id).data == []
    assert [s.id for s in dp.list_subscriptions(other).data] == [sub.id]
    assert error_of(cp.change_topic_compartment, topic.topic_id,
                    ons.ChangeCompartmentDetails(compartment_id="ocid1.compartment.oc1..nope")) == (
        404, "NotAuthorizedOrNotFound")
