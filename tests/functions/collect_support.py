"""Helpers for the collection-side tests (fanout, fetch, state, producer): a client factory on ocisim,
streams and topics made through the real SDK, and readers of what landed in a stream."""

from __future__ import annotations

import base64
from typing import Any

import oci
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
