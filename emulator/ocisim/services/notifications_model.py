"""Notifications resources: topics and subscriptions as stored, as returned, and as requested.

The JSON functions give each response shape exactly the keys of the SDK model
(``NotificationTopic``/``NotificationTopicSummary``, ``Subscription``, ``SubscriptionSummary``,
``UpdateSubscriptionDetails``), with ONS's quirks: a topic's id is ``topicId``; a subscription's
``createdTime`` is epoch milliseconds; ``Subscription.deliverPolicy`` is a JSON *string* while
``SubscriptionSummary.deliveryPolicy`` is an object. The ``parse_*`` helpers validate request
bodies with the 400s the real service gives.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import secrets
import string
from typing import Any

import orjson

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import Lifecycle, field
from ocisim.ocid import ocid_type

TOPIC_STATES = ("ACTIVE", "DELETING", "CREATING")
SUBSCRIPTION_STATES = ("PENDING", "ACTIVE", "DELETED")
PROTOCOLS = ("CUSTOM_HTTPS", "EMAIL", "HTTPS", "ORACLE_FUNCTIONS", "PAGERDUTY", "SLACK", "SMS")
#: Protocols whose endpoint is a URL.
HTTP_PROTOCOLS = ("CUSTOM_HTTPS", "HTTPS", "PAGERDUTY", "SLACK")
#: Protocols ocisim really delivers to (an HTTP POST, or the Functions hook); the others (email,
#: SMS, Slack, PagerDuty) are accepted and logged as ``SIMULATED`` deliveries, never sent anywhere.
DELIVERED_PROTOCOLS = ("CUSTOM_HTTPS", "HTTPS", "ORACLE_FUNCTIONS")
#: Protocols that need no confirmation: the subscription is ACTIVE at once.
CONFIRMED_PROTOCOLS = ("ORACLE_FUNCTIONS",)
#: Default ``backoffRetryPolicy.maxRetryDuration``: two hours, in milliseconds.
DEFAULT_MAX_RETRY_MS = 7_200_000
MAX_ENDPOINT_CHARS = 512
MAX_DESCRIPTION_CHARS = 1024
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SEQ = itertools.count()


@dataclasses.dataclass
class Topic:
    id: str
    name: str
    short_id: str
    compartment_id: str
    description: str | None
    time_created: float
    lifecycle: Lifecycle
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    #: when the topic was deleted (it stays DELETING for ``provisioningDelay``, then disappears)
    time_deleted: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class Subscription:
    id: str
    topic_id: str
    compartment_id: str
    protocol: str
    endpoint: str
    metadata: str | None
    created_ms: int
    state: str
    max_retry_ms: int
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    #: scheme and host of ocisim as the creator reached it, for confirmation and unsubscribe links
    link_base: str = ""
    #: the secret in confirmation and unsubscribe links
    token: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(24))
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class RegionState:
    topics: dict[str, Topic] = dataclasses.field(default_factory=dict)
    subscriptions: dict[str, Subscription] = dataclasses.field(default_factory=dict)
    #: virtual times of recent publishes, per topic, for the 60-per-minute limit
    publishes: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def short_topic_id() -> str:
    """The short id SMS subscribers reply with (``CONFIRM <short-topic-id>``)."""
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


# -- responses -----------------------------------------------------------------------------------


def topic_json(topic: Topic, api_endpoint: str, now: float) -> dict[str, Any]:
    """A ``NotificationTopic`` (the summary has the same keys)."""
    return {
        "name": topic.name, "topicId": topic.id, "shortTopicId": topic.short_id,
        "compartmentId": topic.compartment_id, "lifecycleState": topic.lifecycle.settle(now),
        "description": topic.description, "timeCreated": rfc3339(topic.time_created), "etag": topic.etag,
        "freeformTags": topic.freeform_tags, "definedTags": topic.defined_tags, "apiEndpoint": api_endpoint,
    }


def delivery_policy(sub: Subscription) -> dict[str, Any]:
    return {"backoffRetryPolicy": {"maxRetryDuration": sub.max_retry_ms, "policyType": "EXPONENTIAL"}}


def subscription_json(sub: Subscription, *, summary: bool = False) -> dict[str, Any]:
    """A ``Subscription`` (``deliverPolicy`` as a JSON string) or a ``SubscriptionSummary``
    (``deliveryPolicy`` as an object)."""
    out: dict[str, Any] = {
        "id": sub.id, "topicId": sub.topic_id, "protocol": sub.protocol, "endpoint": sub.endpoint,
        "lifecycleState": sub.state, "compartmentId": sub.compartment_id, "createdTime": sub.created_ms,
        "etag": sub.etag, "freeformTags": sub.freeform_tags, "definedTags": sub.defined_tags,
    }
    if summary:
        out["deliveryPolicy"] = delivery_policy(sub)
    else:
        out["deliverPolicy"] = orjson.dumps(delivery_policy(sub)).decode()
    return out


def update_details_json(sub: Subscription) -> dict[str, Any]:
    """What ``UpdateSubscription`` answers: an ``UpdateSubscriptionDetails``, not the subscription."""
    return {"deliveryPolicy": delivery_policy(sub), "freeformTags": sub.freeform_tags,
            "definedTags": sub.defined_tags}


# -- requests ------------------------------------------------------------------------------------


def parse_topic_name(body: dict[str, Any]) -> str:
    name = field(body, "name", str, required=True)
    if not _TOPIC_NAME.match(name):
        raise errors.invalid("'name' must be 1 to 256 characters: letters, digits, hyphens and underscores.")
    return str(name)


def parse_description(body: dict[str, Any]) -> str | None:
    description = field(body, "description", str)
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise errors.invalid(f"'description' must be at most {MAX_DESCRIPTION_CHARS} characters.")
    return description if description is None else str(description)


def parse_protocol(body: dict[str, Any]) -> str:
    protocol = field(body, "protocol", str, required=True)
    if protocol not in PROTOCOLS:
        raise errors.invalid(f"'protocol' must be one of {list(PROTOCOLS)}.")
    return str(protocol)


def parse_endpoint(body: dict[str, Any], protocol: str) -> str:
    """The subscription endpoint, checked against what its protocol takes."""
    endpoint = str(field(body, "endpoint", str, required=True))
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise errors.invalid(f"'endpoint' must be at most {MAX_ENDPOINT_CHARS} characters.")
    if protocol == "ORACLE_FUNCTIONS":
        if ocid_type(endpoint) != "fnfunc":
            raise errors.invalid("An ORACLE_FUNCTIONS subscription's endpoint must be a function OCID.")
    elif protocol in HTTP_PROTOCOLS:
        if not re.match(r"^https?://[^/\s]+", endpoint):
            raise errors.invalid(f"A {protocol} subscription's endpoint must be an http: or https: URL.")
    elif protocol == "EMAIL":
        if not _EMAIL.match(endpoint):
            raise errors.invalid("An EMAIL subscription's endpoint must be an email address.")
    elif protocol == "SMS" and not _PHONE.match(endpoint):
        raise errors.invalid("An SMS subscription's endpoint must be a phone number in E.164 format.")
    return endpoint


def parse_delivery_policy(body: dict[str, Any]) -> int | None:
    """``deliveryPolicy.backoffRetryPolicy.maxRetryDuration`` (ms), or None when not given."""
    policy = field(body, "deliveryPolicy", dict)
    if policy is None:
        return None
    retry = policy.get("backoffRetryPolicy")
    if not isinstance(retry, dict):
        raise errors.missing("deliveryPolicy.backoffRetryPolicy")
    duration = retry.get("maxRetryDuration")
    if duration is None:
        raise errors.missing("deliveryPolicy.backoffRetryPolicy.maxRetryDuration")
    if isinstance(duration, bool) or not isinstance(duration, int) or not 0 <= duration <= DEFAULT_MAX_RETRY_MS:
        raise errors.invalid(f"'maxRetryDuration' must be an integer number of milliseconds from 0 to "
                             f"{DEFAULT_MAX_RETRY_MS}.")
    policy_type = retry.get("policyType")
    if policy_type is None:
        raise errors.missing("deliveryPolicy.backoffRetryPolicy.policyType")
    if policy_type != "EXPONENTIAL":
        raise errors.invalid("'policyType' must be EXPONENTIAL.")
    return duration


def parse_metadata(body: dict[str, Any]) -> str | None:
    metadata = field(body, "metadata", str)
    return None if metadata is None else str(metadata)
