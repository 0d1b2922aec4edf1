"""ONS topics (``NotificationControlPlaneClient``) and subscriptions (``NotificationDataPlaneClient``).

Topic — found by ``name`` + tag in the compartment (OCI: names are unique in the tenancy, so a foreign
same-named topic anywhere makes the create answer 409, reported as :class:`ChildConflict`). The topic's OCID
is ``topic_id`` in the API, not ``id``. Properties:

==================  =========  =====================================================
property            in place   OCI
==================  =========  =====================================================
``description``     mutable    ``UpdateTopic`` (``TopicAttributesDetails``)
``compartment_id``  immutable  (``changeCompartment`` exists; the operator never moves)
==================  =========  =====================================================

Lifecycle: CREATING → Pending, ACTIVE → Ready, DELETING → Deleting; a deleted topic answers 404.

Subscription — has no name. Its identity is (``topic_id``, ``protocol``, ``endpoint``) + tag; OCI refuses a
second subscription with the same three (409), reported as :class:`ChildConflict` when it is not ours.
``Desired.name`` is not sent to OCI. Properties:

============================  =========  ==============================================================
property                      in place   OCI
============================  =========  ==============================================================
``topic_id``                  immutable
``protocol``                  immutable  default ``ORACLE_FUNCTIONS`` (endpoint: the function OCID)
``endpoint``                  immutable
``max_retry_duration_in_ms``  mutable    ``UpdateSubscription.deliveryPolicy.backoffRetryPolicy``
============================  =========  ==============================================================

Lifecycle: PENDING (awaiting confirmation; ORACLE_FUNCTIONS needs none) → Pending, ACTIVE → Ready,
DELETED → gone. ``Subscription.deliverPolicy`` is a JSON *string*; summaries carry an object.
"""

from __future__ import annotations

import json
from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.ons.models
DEFAULT_PROTOCOL = "ORACLE_FUNCTIONS"


class TopicAdapter(OciAdapter):
    kind = ChildKind.TOPIC
    phases = {"CREATING": Phase.PENDING, "ACTIVE": Phase.READY, "DELETING": Phase.DELETING}
    mutable = frozenset({"description"})
    immutable = frozenset[str]()
    create_takes_retry_token = True

    @property
    def client(self) -> oci.ons.NotificationControlPlaneClient:
        return self.factory.notification_control(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_topic(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"name": name} if name is not None else {}
        return list_all(self.client.list_topics, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.name
        return name

    def _ocid_of(self, resource: Any) -> str:
        ocid: str = resource.topic_id
        return ocid

    def _properties(self, resource: Any) -> dict[str, Any]:
        return {"description": resource.description, "api_endpoint": resource.api_endpoint}

    def _normalize(self, field: str, value: Any) -> Any:
        return value or None if field == "description" else value  # OCI answers "" for no description

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        details = M.CreateTopicDetails(name=desired.name, compartment_id=desired.compartment_id,
                                       description=desired.properties.get("description"), freeform_tags=freeform_tags)
        return self.client.create_topic(details, opc_retry_token=retry_token)

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        details = M.TopicAttributesDetails(description=desired.properties.get("description") or "")
        return self.client.update_topic(observed.ocid, details)

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_topic(ocid)


class SubscriptionAdapter(OciAdapter):
    kind = ChildKind.SUBSCRIPTION
    phases = {"PENDING": Phase.PENDING, "ACTIVE": Phase.READY, "DELETED": None}
    mutable = frozenset({"max_retry_duration_in_ms"})
    immutable = frozenset({"topic_id", "protocol", "endpoint"})
    create_takes_retry_token = True
    deletable_while = frozenset({"PENDING"})  # an unconfirmed subscription may never settle

    @property
    def client(self) -> oci.ons.NotificationDataPlaneClient:
        return self.factory.notification_data(region=self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_subscription(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        topic = desired.properties.get("topic_id")
        kwargs: dict[str, Any] = {"topic_id": topic} if name is not None and topic else {}
        return list_all(self.client.list_subscriptions, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        return None  # subscriptions have no name

    def _same_identity(self, desired: Desired, resource: Any) -> bool:
        props = desired.properties
        return bool(resource.topic_id == props.get("topic_id") and resource.endpoint == props.get("endpoint")
                    and resource.protocol == props.get("protocol", DEFAULT_PROTOCOL))

    def _properties(self, resource: Any) -> dict[str, Any]:
        return {"topic_id": resource.topic_id, "protocol": resource.protocol, "endpoint": resource.endpoint,
                "max_retry_duration_in_ms": _max_retry_ms(resource)}

    def _normalize(self, field: str, value: Any) -> Any:
        return DEFAULT_PROTOCOL if field == "protocol" and value is None else value

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        details = M.CreateSubscriptionDetails(
            topic_id=props.get("topic_id"), compartment_id=desired.compartment_id,
            protocol=props.get("protocol", DEFAULT_PROTOCOL), endpoint=props.get("endpoint"),
            freeform_tags=freeform_tags)
        return self.client.create_subscription(details, opc_retry_token=retry_token)

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        policy = M.DeliveryPolicy(backoff_retry_policy=M.BackoffRetryPolicy(
            max_retry_duration=desired.properties["max_retry_duration_in_ms"], policy_type="EXPONENTIAL"))
        return self.client.update_subscription(observed.ocid, M.UpdateSubscriptionDetails(delivery_policy=policy))

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_subscription(ocid)


def _max_retry_ms(resource: Any) -> int | None:
    """``Subscription.deliverPolicy`` (a JSON string) or ``SubscriptionSummary.deliveryPolicy`` (an object)."""
    text = getattr(resource, "deliver_policy", None)
    if isinstance(text, str) and text:
        try:
            value = json.loads(text).get("backoffRetryPolicy", {}).get("maxRetryDuration")
        except (ValueError, AttributeError):
            return None
        return int(value) if isinstance(value, int | float) else None
    policy = getattr(resource, "delivery_policy", None)
    retry = getattr(policy, "backoff_retry_policy", None)
    duration = getattr(retry, "max_retry_duration", None)
    return int(duration) if duration is not None else None
