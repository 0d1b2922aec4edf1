"""Notifications (ONS) ``/20181201``: topics, subscriptions, publishing and delivery.

The SDK splits ONS in two clients on the same base path: ``NotificationControlPlaneClient`` (topics)
and ``NotificationDataPlaneClient`` (subscriptions and publishing, the latter on the topic's
``apiEndpoint``, which is ocisim's own notification URL for the region). No ONS operation is retried
by the SDK by default.

- Topic names are unique in the tenancy (per region: ONS data is regional) among topics not yet
  gone: 409 ``NotAuthorizedOrResourceAlreadyExists``. A topic is CREATING, then ACTIVE after
  ``provisioningDelay``; deleted, it is DELETING for as long and then answers 404. Its
  subscriptions go with it and their pending deliveries are canceled.
- ``ORACLE_FUNCTIONS`` subscriptions (endpoint: a function OCID) are ACTIVE at once. Every other
  protocol starts PENDING. ``CUSTOM_HTTPS``/``HTTPS`` endpoints receive a confirmation POST
  (``X-OCI-NS-MessageType: SubscriptionConfirmation`` and ``X-OCI-NS-ConfirmationURL``, also as
  ``ConfirmationURL`` in the JSON body); opening that URL, unsigned, confirms. Email, SMS, Slack
  and PagerDuty are never contacted: their confirmation and messages are logged as ``SIMULATED``
  and ``POST /_ocisim/ons/subscriptions/{id}/confirm`` confirms them.
- Publishing checks the 64 KB limit (title plus body, UTF-8; 400 ``InvalidParameter``, the code is
  unverified) and, when the ``onsPublishLimit`` setting is on, 60 publishes per minute per topic on
  the virtual clock (429). ``messageType: JSON`` bodies must be JSON objects with a ``default`` key,
  as documented; every body is delivered verbatim.
- Delivery is asynchronous, to the subscriptions ACTIVE at publish time, with OCI's retry schedule
  (see :mod:`ocisim.services.notifications_delivery`). HTTPS endpoints get an HTTP POST with the
  documented ``X-OCI-NS-*`` headers (``X-OCI-NS-MessageType: Notification`` is unverified; no
  signature headers). Functions are invoked through the ``functions.invoke`` hook *synchronously*
  (``detached=False``): real ONS hands the message to Functions without the publisher waiting,
  which the asynchronous delivery already gives, and waiting for the answer lets a failing
  function be retried and logged like an HTTPS endpoint.
- The per-endpoint delivery rate limits (60/min HTTP, 10/min email) are not enforced.
- Resource events ``com.oraclecloud.notification.<operation>`` (``createtopic``, ``deletetopic``,
  ``createsubscription``, …) go to the Events service.
- Other services publish through the ``ons.publish`` hook.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from ocisim import errors
from ocisim.clock import UTC, rfc3339
from ocisim.control import read_json
from ocisim.framework import (
    Call,
    ControlRoute,
    Lifecycle,
    Regional,
    Route,
    Service,
    cloud_event,
    emit_event,
    empty_response,
    field,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid
from ocisim.services import notifications_model as model
from ocisim.services.notifications_delivery import SIMULATED, Delivery, DeliveryEngine, Transport
from ocisim.services.notifications_model import RegionState, Subscription, Topic
from ocisim.world import Region, World

VERSION = "20181201"
#: Largest title plus body, in UTF-8 bytes.
MAX_MESSAGE_BYTES = 64 * 1024
#: Publishes per minute per topic, when ``onsPublishLimit`` is on.
PUBLISH_LIMIT = 60


def ns_timestamp(epoch: float) -> str:
    """``X-OCI-NS-Timestamp`` as OCI writes it: ``2019-04-19T21:26:00.310+0000``."""
    value = dt.datetime.fromtimestamp(epoch, tz=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


class NotificationsService(Service):
    name = "notification"
    versions = (VERSION,)
    audit_source = "notification"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._regions: Regional[RegionState] = Regional(lambda _region: RegionState())
        self.transport = Transport(world)
        self.engine = DeliveryEngine(world.clock, self.transport.send)
        world.provide("ons.publish", self.publish_hook)

    def reset(self) -> None:
        self._regions.clear()
        self.engine.reset()

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
        await self.transport.close()

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/topics", "CreateTopic", self.create_topic, retry_token=True),
            Route("GET", "/topics", "ListTopics", self.list_topics),
            Route("GET", "/topics/{topicId}", "GetTopic", self.get_topic),
            Route("PUT", "/topics/{topicId}", "UpdateTopic", self.update_topic),
            Route("DELETE", "/topics/{topicId}", "DeleteTopic", self.delete_topic),
            Route("POST", "/topics/{topicId}/actions/changeCompartment", "ChangeTopicCompartment",
                  self.change_topic_compartment, retry_token=True),
            Route("POST", "/topics/{topicId}/messages", "PublishMessage", self.publish_message, audited=False),
            Route("POST", "/subscriptions", "CreateSubscription", self.create_subscription, retry_token=True),
            Route("GET", "/subscriptions", "ListSubscriptions", self.list_subscriptions),
            Route("GET", "/subscriptions/{subscriptionId}", "GetSubscription", self.get_subscription),
            Route("PUT", "/subscriptions/{subscriptionId}", "UpdateSubscription", self.update_subscription),
            Route("DELETE", "/subscriptions/{subscriptionId}", "DeleteSubscription", self.delete_subscription),
            Route("POST", "/subscriptions/{subscriptionId}/actions/changeCompartment",
                  "ChangeSubscriptionCompartment", self.change_subscription_compartment, retry_token=True),
            Route("POST", "/subscriptions/{subscriptionId}/resendConfirmation", "ResendSubscriptionConfirmation",
                  self.resend_confirmation),
            Route("GET", "/subscriptions/{subscriptionId}/confirmation", "GetConfirmSubscription",
                  self.confirm_subscription, auth_optional=True),
            Route("GET", "/subscriptions/{subscriptionId}/unsubscription", "GetUnsubscription",
                  self.unsubscribe, auth_optional=True),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [
            ControlRoute("GET", "/ons/deliveries", self._control_deliveries),
            ControlRoute("POST", "/ons/drain", self._control_drain),
            ControlRoute("POST", "/ons/subscriptions/{subscriptionId}/confirm", self._control_confirm),
        ]

    # -- lookups -----------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _find_topic(self, region: str, topic_id: str) -> Topic:
        """A topic not yet gone (DELETING ones are found), or 404; purges the ones whose deletion ended."""
        state = self._regions[region]
        topic = state.topics.get(topic_id)
        if topic is None:
            raise errors.not_found()
        if topic.lifecycle.settle(self._now()) == "DELETED":
            del state.topics[topic_id]
            raise errors.not_found()
        return topic

    def _topic(self, call: Call, topic_id: str | None = None) -> Topic:
        topic = self._find_topic(call.region.name, topic_id or call.params["topicId"])
        call.target(topic.compartment_id, topic.id, topic.name)
        return topic

    def _live_topics(self, region: str) -> list[Topic]:
        state = self._regions[region]
        now = self._now()
        for topic in [t for t in state.topics.values() if t.lifecycle.settle(now) == "DELETED"]:
            del state.topics[topic.id]
        return list(state.topics.values())

    def _subscription(self, call: Call, *, deleted: bool = False) -> Subscription:
        sub = self._regions[call.region.name].subscriptions.get(call.params["subscriptionId"])
        if sub is None or (sub.state == "DELETED" and not deleted):
            raise errors.not_found()
        call.target(sub.compartment_id, sub.id)
        return sub

    def _topic_response(self, call: Call, topic: Topic, status: int = 200) -> web.Response:
        return json_response(model.topic_json(topic, call.endpoint(self.name), self._now()), status=status,
                             headers={"etag": topic.etag})

    def _subscription_response(self, call: Call, sub: Subscription) -> web.Response:
        return json_response(model.subscription_json(sub), headers={"etag": sub.etag})

    async def _emit(self, region: Region, operation: str, compartment_id: str, resource_id: str, name: str | None,
                    freeform: dict[str, str], defined: dict[str, dict[str, Any]]) -> None:
        event = cloud_event(self.world, region, f"com.oraclecloud.notification.{operation}", source="notification",
                            compartment_id=compartment_id, resource_id=resource_id, resource_name=name,
                            freeform_tags=freeform, defined_tags=defined)
        await emit_event(self.world, region, event)

    # -- topics ------------------------------------------------------------------------------------

    async def create_topic(self, call: Call) -> web.StreamResponse:
        body = call.json()
        name = model.parse_topic_name(body)
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        description = model.parse_description(body)
        freeform, defined = tags(body)
        if any(t.name == name for t in self._live_topics(call.region.name)):
            raise errors.already_exists(f"A topic named '{name}' already exists in the tenancy.")
        now = self._now()
        topic = Topic(id=new_ocid("onstopic", call.region.key), name=name, short_id=model.short_topic_id(),
                      compartment_id=compartment_id, description=description, time_created=now,
                      lifecycle=Lifecycle("CREATING"), freeform_tags=freeform, defined_tags=defined)
        topic.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        self._regions[call.region.name].topics[topic.id] = topic
        call.target(compartment_id, topic.id, topic.name)
        await self._emit(call.region, "createtopic", compartment_id, topic.id, topic.name, freeform, defined)
        return self._topic_response(call, topic)

    async def list_topics(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        wanted_id, wanted_name = call.query("id"), call.query("name")
        wanted_state = call.query("lifecycleState")
        if wanted_state is not None:
            wanted_state = wanted_state.upper()
            if wanted_state not in model.TOPIC_STATES:
                raise errors.invalid(f"'lifecycleState' must be one of {list(model.TOPIC_STATES)}.")
        now = self._now()
        items = [t for t in self._live_topics(call.region.name)
                 if t.compartment_id == compartment_id and (wanted_id is None or t.id == wanted_id)
                 and (wanted_name is None or t.name == wanted_name)
                 and (wanted_state is None or t.lifecycle.settle(now) == wanted_state)]
        items = sort_items(call, items, {"TIMECREATED": lambda t: (t.time_created, t.seq),
                                         "LIFECYCLESTATE": lambda t: (t.lifecycle.settle(now), t.seq)},
                           "TIMECREATED")
        endpoint = call.endpoint(self.name)
        return list_response(call, [model.topic_json(t, endpoint, now) for t in items],
                             default_limit=10, max_limit=50)

    async def get_topic(self, call: Call) -> web.StreamResponse:
        return self._topic_response(call, self._topic(call))

    async def update_topic(self, call: Call) -> web.StreamResponse:
        topic = self._topic(call)
        call.check_if_match(topic.etag)
        body = call.json()
        if "name" in body or "compartmentId" in body:
            raise errors.invalid("Only 'description' and tags of a topic can be updated.")
        description = model.parse_description(body)
        freeform, defined = tags(body)
        self._require_topic_active(topic)
        if "description" in body:
            topic.description = description
        if "freeformTags" in body:
            topic.freeform_tags = freeform
        if "definedTags" in body:
            topic.defined_tags = defined
        topic.etag = secrets.token_hex(16)
        await self._emit(call.region, "updatetopic", topic.compartment_id, topic.id, topic.name,
                         topic.freeform_tags, topic.defined_tags)
        return self._topic_response(call, topic)

    async def delete_topic(self, call: Call) -> web.StreamResponse:
        topic = self._topic(call)
        call.check_if_match(topic.etag)
        if topic.lifecycle.state == "DELETING":
            raise errors.incorrect_state("The topic is already being deleted.")
        now = self._now()
        topic.time_deleted = now
        topic.etag = secrets.token_hex(16)
        topic.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        for sub in self._regions[call.region.name].subscriptions.values():
            if sub.topic_id == topic.id and sub.state != "DELETED":
                self._drop_subscription(sub, "the topic was deleted")
        await self._emit(call.region, "deletetopic", topic.compartment_id, topic.id, topic.name,
                         topic.freeform_tags, topic.defined_tags)
        return empty_response(204)

    async def change_topic_compartment(self, call: Call) -> web.StreamResponse:
        topic = self._topic(call)
        call.check_if_match(topic.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        self._require_topic_active(topic)
        topic.compartment_id = target
        topic.etag = secrets.token_hex(16)
        call.target(target, topic.id, topic.name)
        return empty_response(200, {"etag": topic.etag})

    @staticmethod
    def _require_topic_active(topic: Topic) -> None:
        state = topic.lifecycle.state
        if state == "DELETING":
            raise errors.not_found()
        if state != "ACTIVE":
            raise errors.incorrect_state(f"The topic is {state}; try again once it is ACTIVE.")

    # -- subscriptions ---------------------------------------------------------------------------------

    async def create_subscription(self, call: Call) -> web.StreamResponse:
        body = call.json()
        topic_id = field(body, "topicId", str, required=True)
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        protocol = model.parse_protocol(body)
        endpoint = model.parse_endpoint(body, protocol)
        metadata = model.parse_metadata(body)
        freeform, defined = tags(body)
        topic = self._topic(call, str(topic_id))
        self._require_topic_active(topic)
        state = self._regions[call.region.name]
        if any(s.topic_id == topic.id and s.protocol == protocol and s.endpoint == endpoint and s.state != "DELETED"
               for s in state.subscriptions.values()):
            raise errors.already_exists(f"The topic already has a {protocol} subscription for this endpoint.")
        confirmed = protocol in model.CONFIRMED_PROTOCOLS
        sub = Subscription(id=new_ocid("onssubscription", call.region.key), topic_id=topic.id,
                           compartment_id=compartment_id, protocol=protocol, endpoint=endpoint, metadata=metadata,
                           created_ms=int(self._now() * 1000), state="ACTIVE" if confirmed else "PENDING",
                           max_retry_ms=model.DEFAULT_MAX_RETRY_MS, freeform_tags=freeform, defined_tags=defined,
                           link_base=call.base_url)
        state.subscriptions[sub.id] = sub
        call.target(compartment_id, sub.id)
        if not confirmed:
            self._send_confirmation(call.region.name, topic, sub)
        await self._emit(call.region, "createsubscription", compartment_id, sub.id, None, freeform, defined)
        return self._subscription_response(call, sub)

    async def list_subscriptions(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        topic_id = call.query("topicId")
        items = sorted((s for s in self._regions[call.region.name].subscriptions.values()
                        if s.compartment_id == compartment_id and s.state != "DELETED"
                        and (topic_id is None or s.topic_id == topic_id)), key=lambda s: s.seq)
        return list_response(call, [model.subscription_json(s, summary=True) for s in items],
                             default_limit=10, max_limit=50)

    async def get_subscription(self, call: Call) -> web.StreamResponse:
        return self._subscription_response(call, self._subscription(call, deleted=True))

    async def update_subscription(self, call: Call) -> web.StreamResponse:
        sub = self._subscription(call)
        call.check_if_match(sub.etag)
        body = call.json()
        max_retry_ms = model.parse_delivery_policy(body)
        freeform, defined = tags(body)
        if max_retry_ms is not None:
            sub.max_retry_ms = max_retry_ms
        if "freeformTags" in body:
            sub.freeform_tags = freeform
        if "definedTags" in body:
            sub.defined_tags = defined
        sub.etag = secrets.token_hex(16)
        await self._emit(call.region, "updatesubscription", sub.compartment_id, sub.id, None,
                         sub.freeform_tags, sub.defined_tags)
        return json_response(model.update_details_json(sub), headers={"etag": sub.etag})

    async def delete_subscription(self, call: Call) -> web.StreamResponse:
        sub = self._subscription(call)
        call.check_if_match(sub.etag)
        self._drop_subscription(sub, "the subscription was deleted")
        await self._emit(call.region, "deletesubscription", sub.compartment_id, sub.id, None,
                         sub.freeform_tags, sub.defined_tags)
        return empty_response(204)

    async def change_subscription_compartment(self, call: Call) -> web.StreamResponse:
        sub = self._subscription(call)
        call.check_if_match(sub.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        sub.compartment_id = target
        sub.etag = secrets.token_hex(16)
        call.target(target, sub.id)
        await self._emit(call.region, "movesubscription", target, sub.id, None, sub.freeform_tags, sub.defined_tags)
        return empty_response(200, {"etag": sub.etag})

    async def resend_confirmation(self, call: Call) -> web.StreamResponse:
        sub = self._subscription(call)
        if sub.state != "PENDING":
            raise errors.incorrect_state(f"The subscription is {sub.state}; only PENDING ones are confirmed.")
        topic = self._find_topic(call.region.name, sub.topic_id)
        sub.link_base = call.base_url
        self._send_confirmation(call.region.name, topic, sub)
        return self._subscription_response(call, sub)

    def _link_token(self, call: Call, sub: Subscription) -> None:
        """Check the ``token`` and ``protocol`` of a confirmation or unsubscribe link."""
        token, protocol = call.query("token"), call.query("protocol")
        if not token:
            raise errors.missing("token")
        if not protocol:
            raise errors.missing("protocol")
        if protocol != sub.protocol:
            raise errors.invalid(f"'protocol' must be the subscription's protocol, {sub.protocol}.")
        if not secrets.compare_digest(token, sub.token):
            raise errors.invalid("The token is not valid for this subscription.")

    async def confirm_subscription(self, call: Call) -> web.StreamResponse:
        sub = self._subscription(call)
        self._link_token(call, sub)
        topic = self._find_topic(call.region.name, sub.topic_id)
        already = sub.state == "ACTIVE"
        sub.state = "ACTIVE"
        if not already:
            sub.etag = secrets.token_hex(16)
        message = (f"The subscription to topic {topic.name} was already confirmed." if already
                   else f"You have subscribed {sub.endpoint} to topic {topic.name}.")
        return json_response({"topicName": topic.name, "topicId": topic.id, "endpoint": sub.endpoint,
                              "unsubscribeUrl": self._link(call.region.name, sub, "unsubscription"), "message": message,
                              "subscriptionId": sub.id})

    async def unsubscribe(self, call: Call) -> web.StreamResponse:
        sub = self._subscription(call)
        self._link_token(call, sub)
        topic = self._find_topic(call.region.name, sub.topic_id)
        self._drop_subscription(sub, "the subscriber unsubscribed")
        await self._emit(call.region, "getunsubscription", sub.compartment_id, sub.id, None,
                         sub.freeform_tags, sub.defined_tags)
        return json_response(f"You have unsubscribed {sub.endpoint} from topic {topic.name}.")

    def _drop_subscription(self, sub: Subscription, reason: str) -> None:
        sub.state = "DELETED"
        sub.etag = secrets.token_hex(16)
        self.engine.cancel(sub.id, reason)

    def _link(self, region: str, sub: Subscription, kind: str) -> str:
        """A confirmation or unsubscribe link: the real path, on ocisim, carrying the subscription's token."""
        base = sub.link_base or self.world.base_url
        return (f"{base}/{region}/{self.name}/{VERSION}/subscriptions/{sub.id}/{kind}"
                f"?token={quote(sub.token)}&protocol={sub.protocol}")

    # -- publishing -----------------------------------------------------------------------------------

    async def publish_message(self, call: Call) -> web.StreamResponse:
        topic = self._topic(call)
        body = call.json()
        text = field(body, "body", str, required=True)
        title = field(body, "title", str)
        message_type = call.header("messageType") or "RAW_TEXT"
        if message_type not in ("JSON", "RAW_TEXT"):
            raise errors.invalid("The 'messageType' header must be JSON or RAW_TEXT.")
        if message_type == "JSON":
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise errors.invalid("A JSON message's body must be a JSON object.") from exc
            if not isinstance(parsed, dict) or "default" not in parsed:
                raise errors.invalid("A JSON message's body must be an object with a 'default' key.")
        message_id = self._publish(call.region.name, topic, str(text), title, message_type)
        return json_response({"messageId": message_id, "timeStamp": rfc3339(self._now())})

    async def publish_hook(self, region: str, topic_id: str, body: str, title: str | None = None,
                           message_type: str | None = None) -> str:
        """The ``ons.publish`` hook: publish as the service itself would (Events' ONS actions)."""
        return self._publish(region, self._find_topic(region, topic_id), body, title, message_type or "RAW_TEXT")

    def _publish(self, region: str, topic: Topic, body: str, title: str | None, message_type: str) -> str:
        state = topic.lifecycle.state
        if state == "DELETING":
            raise errors.not_found()
        if state != "ACTIVE":
            raise errors.incorrect_state(f"The topic is {state}; messages can be published once it is ACTIVE.")
        size = len(body.encode()) + len((title or "").encode())
        if size > MAX_MESSAGE_BYTES:
            raise errors.invalid(f"The message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (64 KB).")
        now = self._now()
        if self.world.settings.ons_publish_limit:
            recent = [t for t in self._regions[region].publishes.get(topic.id, []) if t > now - 60.0]
            if len(recent) >= PUBLISH_LIMIT:
                raise errors.too_many_requests(f"The topic takes at most {PUBLISH_LIMIT} messages per minute.")
            recent.append(now)
            self._regions[region].publishes[topic.id] = recent
        message_id = str(uuid.uuid4())
        content_type = "application/json" if message_type == "JSON" else "text/plain; charset=UTF-8"
        for sub in list(self._regions[region].subscriptions.values()):
            if sub.topic_id != topic.id or sub.state != "ACTIVE":
                continue
            headers = {
                "Content-Type": content_type, "X-OCI-NS-MessageId": message_id, "X-OCI-NS-TopicOcid": topic.id,
                "X-OCI-NS-TopicName": topic.name, "X-OCI-NS-MessageType": "Notification",
                "X-OCI-NS-UnsubscribeURL": self._link(region, sub, "unsubscription"),
                "X-OCI-NS-Timestamp": ns_timestamp(now),
            }
            self._deliver(Delivery(
                id=secrets.token_hex(8), region=region, kind="MESSAGE", message_id=message_id, topic_id=topic.id,
                subscription_id=sub.id, protocol=sub.protocol, endpoint=sub.endpoint, title=title,
                body=body.encode(), headers=headers, created=now, max_retry_seconds=sub.max_retry_ms / 1000))
        return message_id

    def _send_confirmation(self, region: str, topic: Topic, sub: Subscription) -> None:
        """Ask the endpoint to confirm: one attempt (``ResendSubscriptionConfirmation`` asks again)."""
        now = self._now()
        message_id = str(uuid.uuid4())
        url = self._link(region, sub, "confirmation")
        body = orjson.dumps({
            "ConfirmationURL": url, "TopicOcid": topic.id, "TopicName": topic.name, "SubscriptionId": sub.id,
            "Message": f"You have chosen to subscribe to the topic {topic.name}. To confirm, open the "
                       "ConfirmationURL.",
        })
        headers = {
            "Content-Type": "application/json", "X-OCI-NS-MessageId": message_id, "X-OCI-NS-TopicOcid": topic.id,
            "X-OCI-NS-TopicName": topic.name, "X-OCI-NS-MessageType": "SubscriptionConfirmation",
            "X-OCI-NS-ConfirmationURL": url, "X-OCI-NS-SubscriptionId": sub.id, "X-OCI-NS-State": "Pending",
            "X-OCI-NS-Timestamp": ns_timestamp(now),
        }
        self._deliver(Delivery(
            id=secrets.token_hex(8), region=region, kind="CONFIRMATION", message_id=message_id, topic_id=topic.id,
            subscription_id=sub.id, protocol=sub.protocol, endpoint=sub.endpoint, title=None, body=body,
            headers=headers, created=now, max_retry_seconds=0.0))

    def _deliver(self, delivery: Delivery) -> None:
        if delivery.protocol in model.DELIVERED_PROTOCOLS:
            self.engine.submit(delivery)
        else:
            delivery.state, delivery.reason = SIMULATED, f"{delivery.protocol} endpoints are not contacted by ocisim"
            self.engine.record(delivery)

    # -- inventory and control ---------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        now = self._now()
        endpoint = f"{self.world.base_url}/{region}/{self.name}"
        return {
            "topics": [model.topic_json(t, endpoint, now) for t in self._live_topics(region)],
            "subscriptions": [model.subscription_json(s) for s in self._regions[region].subscriptions.values()
                              if s.state != "DELETED"],
        }

    async def _control_deliveries(self, request: web.Request) -> web.StreamResponse:
        """``GET /_ocisim/ons/deliveries[?topicId=&subscriptionId=&messageId=&kind=&region=]``."""
        q = request.query
        records = self.engine.records(region=q.get("region"), topic_id=q.get("topicId"),
                                      subscription_id=q.get("subscriptionId"), message_id=q.get("messageId"),
                                      kind=q.get("kind"))
        return json_response([d.to_json() for d in records])

    async def _control_drain(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/ons/drain {"timeoutSeconds": 30}``: wait until no attempt is running or due."""
        body = await read_json(request)
        timeout = body.get("timeoutSeconds", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise errors.invalid("'timeoutSeconds' must be a non-negative number.")
        drained = await self.engine.drain(float(timeout))
        waiting = [d for d in self.engine.records() if d.state in ("PENDING", "IN_FLIGHT", "RETRY_WAIT")]
        return json_response({"drained": drained, "unfinished": len(waiting)}, status=200 if drained else 504)

    async def _control_confirm(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/ons/subscriptions/{id}/confirm``: what opening an email's link would do."""
        sub_id = request.match_info["subscriptionId"]
        for _region, state in self._regions.items():
            sub = state.subscriptions.get(sub_id)
            if sub is not None and sub.state != "DELETED":
                if sub.state != "ACTIVE":
                    sub.state, sub.etag = "ACTIVE", secrets.token_hex(16)
                return json_response(model.subscription_json(sub))
        raise errors.not_found()
