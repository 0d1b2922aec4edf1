"""Notifications and Events responses against the SDK's models: raw JSON, key by key."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import oci
import requests

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.ocid import new_ocid
from tests.emulator.ocisim.ons_support import Receiver, drain
from tests.support.contract import assert_all_match, assert_matches_model, raw_call

ons = oci.ons.models
ev = oci.events.models


def test_notification_shapes(ocisim: OcisimServer, oci_config: dict[str, Any],
                             ocisim_control: OcisimControl) -> None:
    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = raw_call(ocisim, oci_config, method, "notification", f"/20181201{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    root = ocisim.tenancy_id
    topic = call("POST", "/topics", body={"name": "shapes", "compartmentId": root, "description": "d"})
    assert_matches_model(topic, ons.NotificationTopic)
    assert "id" not in topic
    assert_matches_model(call("GET", f"/topics/{topic['topicId']}"), ons.NotificationTopic)
    assert_matches_model(call("PUT", f"/topics/{topic['topicId']}", body={"description": "e"}), ons.NotificationTopic)
    assert_all_match(call("GET", "/topics", params={"compartmentId": root}), ons.NotificationTopicSummary)

    receiver = Receiver().start()
    try:
        sub = call("POST", "/subscriptions", body={"topicId": topic["topicId"], "compartmentId": root,
                                                   "protocol": "CUSTOM_HTTPS", "endpoint": receiver.url})
        drain(ocisim_control)
        link = receiver.messages("SubscriptionConfirmation")[0]["headers"]["X-OCI-NS-ConfirmationURL"]
    finally:
        receiver.close()
    assert_matches_model(sub, ons.Subscription)
    assert isinstance(sub["deliverPolicy"], str)
    assert isinstance(sub["createdTime"], int)
    assert_matches_model(json.loads(sub["deliverPolicy"]), ons.DeliveryPolicy)
    assert_matches_model(call("GET", f"/subscriptions/{sub['id']}"), ons.Subscription)
    resent = call("POST", f"/subscriptions/{sub['id']}/resendConfirmation")
    assert_matches_model(resent, ons.Subscription)

    confirmation = requests.get(link, timeout=10).json()
    assert_matches_model(confirmation, ons.ConfirmationResult)
    query = parse_qs(urlparse(link).query)
    assert_matches_model(call("GET", f"/subscriptions/{sub['id']}/confirmation",
                              params={"token": query["token"][0], "protocol": "CUSTOM_HTTPS"}),
                         ons.ConfirmationResult)

    summaries = call("GET", "/subscriptions", params={"compartmentId": root, "topicId": topic["topicId"]})
    assert_all_match(summaries, ons.SubscriptionSummary)
    assert isinstance(summaries[0]["deliveryPolicy"], dict)
    assert_matches_model(summaries[0]["deliveryPolicy"], ons.DeliveryPolicy)
    assert_matches_model(summaries[0]["deliveryPolicy"]["backoffRetryPolicy"], ons.BackoffRetryPolicy)

    policy = {"backoffRetryPolicy": {"maxRetryDuration": 60_000, "policyType": "EXPONENTIAL"}}
    updated = call("PUT", f"/subscriptions/{sub['id']}", body={"deliveryPolicy": policy})
    assert_matches_model(updated, ons.UpdateSubscriptionDetails)
    assert updated["deliveryPolicy"] == policy

    published = call("POST", f"/topics/{topic['topicId']}/messages", body={"title": "t", "body": "b"})
    assert_matches_model(published, ons.PublishResult)

    unsubscribed = requests.get(confirmation["unsubscribeUrl"], timeout=10)
    assert isinstance(unsubscribed.json(), str)


def test_events_shapes(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = raw_call(ocisim, oci_config, method, "events", f"/20181201{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    root = ocisim.tenancy_id
    body = {
        "displayName": "shapes", "description": "all kinds", "isEnabled": True, "compartmentId": root,
        "condition": '{"eventType": ["com.oraclecloud.objectstorage.createobject"]}',
        "actions": {"actions": [
            {"actionType": "OSS", "isEnabled": True, "streamId": new_ocid("stream", "iad"), "description": "s"},
            {"actionType": "ONS", "isEnabled": True, "topicId": new_ocid("onstopic", "iad")},
            {"actionType": "FAAS", "isEnabled": False, "functionId": new_ocid("fnfunc", "iad")},
        ]},
        "freeformTags": {"a": "b"},
    }
    rule = call("POST", "/rules", body=body)
    for got in (rule, call("GET", f"/rules/{rule['id']}"),
                call("PUT", f"/rules/{rule['id']}", body={"description": "changed"})):
        assert_matches_model(got, ev.Rule)
        assert_matches_model(got["actions"], ev.ActionList)
        oss, notify, faas = got["actions"]["actions"]
        assert_matches_model(oss, ev.StreamingServiceAction)
        assert_matches_model(notify, ev.NotificationServiceAction)
        assert_matches_model(faas, ev.FaaSAction)
        assert isinstance(got["condition"], str)
    summaries = call("GET", "/rules", params={"compartmentId": root})
    assert_all_match(summaries, ev.RuleSummary)
    assert "actions" not in summaries[0]
