"""Helpers for the collection-side tests (fanout, fetch, state, producer): a client factory on ocisim,
streams and topics made through the real SDK, and readers of what landed in a stream."""

from __future__ import annotations

import base64
from typing import Any

import oci
import orjson
from pydantic import SecretStr

from ocisim import OcisimServer
from siem_pipeline.oci_clients import ApiKeyAuth, CircuitBreakerPolicy, ClientSettings, OciClientFactory

REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1")


def make_factory(ocisim: OcisimServer, region: str = "us-ashburn-1") -> OciClientFactory:
    """Clients signed with the admin's API key, retries without sleeping, breakers off."""
    auth = ApiKeyAuth(user=ocisim.admin_user_id, tenancy=ocisim.tenancy_id, fingerprint=ocisim.fingerprint,
                      private_key=SecretStr(ocisim.private_key_pem), region=region)
    settings = ClientSettings.fast(endpoint_template=ocisim.endpoint_template,
                                   circuit_breaker=CircuitBreakerPolicy(enabled=False))
    return OciClientFactory(auth, settings)


def make_stream(factory: OciClientFactory, ocisim: OcisimServer, name: str, partitions: int = 1) -> Any:
    details = oci.streaming.models.CreateStreamDetails(name=name, partitions=partitions,
                                                       compartment_id=ocisim.tenancy_id)
    return factory.stream_admin().create_stream(details).data


def make_topic(factory: OciClientFactory, ocisim: OcisimServer, name: str) -> Any:
    details = oci.ons.models.CreateTopicDetails(name=name, compartment_id=ocisim.tenancy_id)
    return factory.notification_control().create_topic(details).data


def dump(ocisim_control: Any, stream_id: str) -> list[dict[str, Any]]:
    """Every retained message of a stream (ocisim's control route), key and value decoded."""
    messages = ocisim_control.request("GET", f"/streaming/streams/{stream_id}/messages")
    out = []
    for m in messages:
        out.append({"partition": m["partition"], "offset": m["offset"],
                    "key": base64.b64decode(m["key"]) if m.get("key") is not None else None,
                    "value": base64.b64decode(m["value"])})
    return out


def record_topic(factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: Any, topic: Any) -> None:
    """Subscribe an (ocisim-simulated) email endpoint, so every message published is in the deliveries log."""
    details = oci.ons.models.CreateSubscriptionDetails(topic_id=topic.topic_id, compartment_id=ocisim.tenancy_id,
                                                       protocol="EMAIL", endpoint="siem-tests@example.com")
    sub = factory.notification_data().create_subscription(details).data
    ocisim_control.request("POST", f"/ons/subscriptions/{sub.id}/confirm")


def published(ocisim_control: Any, topic_id: str) -> list[str]:
    """Bodies of the messages published on a recorded topic, oldest first."""
    records = ocisim_control.request("GET", f"/ons/deliveries?topicId={topic_id}&kind=MESSAGE")
    return [r["body"] for r in sorted(records, key=lambda r: r["timeCreated"])]


class Pipeline:
    """The collection side's OCI resources in ocisim, and its config."""

    def __init__(self, ocisim: OcisimServer, ocisim_control: Any, factory: OciClientFactory,
                 **config: Any) -> None:
        self.ocisim, self.control, self.factory = ocisim, ocisim_control, factory
        self.work = make_stream(factory, ocisim, "siem-work", partitions=2)
        self.events = make_stream(factory, ocisim, "siem-events", partitions=4)
        self.state = make_stream(factory, ocisim, "siem-state", partitions=2)
        self.dlq = make_stream(factory, ocisim, "siem-dlq", partitions=1)
        self.fetch_topic = make_topic(factory, ocisim, "siem-fetch")
        self.export_topic = make_topic(factory, ocisim, "siem-export")
        record_topic(factory, ocisim, ocisim_control, self.fetch_topic)
        record_topic(factory, ocisim, ocisim_control, self.export_topic)
        self.seen_requests = 0
        self.env = {
            "SIEM_STREAM_ENDPOINT": self.work.messages_endpoint,
            "SIEM_WORK_STREAM_ID": self.work.id, "SIEM_EVENTS_STREAM_ID": self.events.id,
            "SIEM_STATE_STREAM_ID": self.state.id, "SIEM_STATE_STREAM_PARTITIONS": "2",
            "SIEM_DLQ_STREAM_ID": self.dlq.id,
            "SIEM_FETCH_TOPIC_ID": self.fetch_topic.topic_id, "SIEM_EXPORT_TOPIC_ID": self.export_topic.topic_id,
            "SIEM_TOPIC_ENDPOINT": self.fetch_topic.api_endpoint,
            **{k: str(v) for k, v in config.items()},
        }

    def new_fetch_requests(self) -> list[str]:
        """Fetch requests published since the last call."""
        bodies = published(self.control, self.fetch_topic.topic_id)
        fresh = bodies[self.seen_requests:]
        self.seen_requests = len(bodies)
        return fresh

    def event_ids(self) -> list[str]:
        return [orjson.loads(m["value"])["eventId"] for m in dump(self.control, self.events.id)]
