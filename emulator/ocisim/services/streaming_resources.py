"""Streaming resources: stream pools and streams as stored, as returned, and as requested.

The JSON functions give each response shape exactly the keys of the SDK model (``Stream``,
``StreamSummary``, ``StreamPool``, ``StreamPoolSummary``); the ``parse_*`` helpers validate request
bodies with the 400s the real service gives.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from typing import Any

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import Call, Lifecycle, field
from ocisim.services.streaming_log import StreamLog

STATES = ("CREATING", "ACTIVE", "DELETING", "DELETED", "FAILED", "UPDATING")
_SEQ = itertools.count()


@dataclasses.dataclass
class StreamPool:
    id: str
    compartment_id: str
    name: str
    time_created: float
    lifecycle: Lifecycle
    kafka: dict[str, Any]
    kms_key_id: str | None
    private_endpoint: dict[str, Any] | None
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    security_attributes: dict[str, Any]
    time_deleted: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class Stream:
    id: str
    name: str
    partitions: int
    retention_hours: int
    compartment_id: str
    pool_id: str
    time_created: float
    lifecycle: Lifecycle
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    log: StreamLog
    time_deleted: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class RegionState:
    pools: dict[str, StreamPool] = dataclasses.field(default_factory=dict)
    streams: dict[str, Stream] = dataclasses.field(default_factory=dict)


def fqdn(region: str) -> str:
    """The real shape of a public pool's endpoint (ocisim serves no Kafka, so it is informative only)."""
    return f"cell-1.streaming.{region}.oci.oraclecloud.com"


def pool_json(pool: StreamPool, region: str, now: float, *, summary: bool = False) -> dict[str, Any]:
    """A ``StreamPool`` (or ``StreamPoolSummary``) as the API returns it."""
    out: dict[str, Any] = {
        "id": pool.id, "compartmentId": pool.compartment_id, "name": pool.name,
        "lifecycleState": pool.lifecycle.settle(now), "timeCreated": rfc3339(pool.time_created),
        "isPrivate": pool.private_endpoint is not None,
        "freeformTags": pool.freeform_tags, "securityAttributes": pool.security_attributes,
        "definedTags": pool.defined_tags,
    }
    if summary:
        return out
    private = pool.private_endpoint or {}
    out.update({
        "lifecycleStateDetails": None,
        "kafkaSettings": {"bootstrapServers": f"{fqdn(region)}:9092", **pool.kafka},
        "customEncryptionKey": {"kmsKeyId": pool.kms_key_id, "keyState": "ACTIVE" if pool.kms_key_id else "NONE"},
        "endpointFqdn": fqdn(region),
        "privateEndpointSettings": {"subnetId": private.get("subnetId"),
                                    "privateEndpointIp": private.get("privateEndpointIp"),
                                    "nsgIds": private.get("nsgIds")},
    })
    return out

def stream_json(stream: Stream, endpoint: str, now: float, *, summary: bool = False) -> dict[str, Any]:
    """A ``Stream`` (or ``StreamSummary``, which lacks retention and state details)."""
    out: dict[str, Any] = {
        "name": stream.name, "id": stream.id, "partitions": stream.partitions,
        "compartmentId": stream.compartment_id, "streamPoolId": stream.pool_id,
        "lifecycleState": stream.lifecycle.settle(now), "timeCreated": rfc3339(stream.time_created),
        "messagesEndpoint": endpoint, "freeformTags": stream.freeform_tags, "definedTags": stream.defined_tags,
    }
    if not summary:
        out["retentionInHours"] = stream.retention_hours
        out["lifecycleStateDetails"] = None
    return out


# -- request helpers ---------------------------------------------------------------------------------


def parse_name(body: dict[str, Any]) -> str:
    name: str = field(body, "name", str, required=True)
    if len(name) > 255:
        raise errors.invalid("'name' must be at most 255 characters.")
    return name


def parse_kafka(body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """``kafkaSettings`` without ``bootstrapServers`` (derived from the region, read-only)."""
    settings = field(body, "kafkaSettings", dict, default={})
    base = current or {"autoCreateTopicsEnable": False, "logRetentionHours": 24, "numPartitions": 1}
    auto = field(settings, "autoCreateTopicsEnable", bool, default=base["autoCreateTopicsEnable"])
    hours = field(settings, "logRetentionHours", int, default=base["logRetentionHours"])
    count = field(settings, "numPartitions", int, default=base["numPartitions"])
    if not 24 <= hours <= 168:
        raise errors.invalid("'kafkaSettings.logRetentionHours' must be between 24 and 168.")
    if count < 1:
        raise errors.invalid("'kafkaSettings.numPartitions' must be at least 1.")
    return {"autoCreateTopicsEnable": auto, "logRetentionHours": hours, "numPartitions": count}


def parse_kms_key(body: dict[str, Any]) -> str | None:
    details = field(body, "customEncryptionKeyDetails", dict)
    if details is None:
        return None
    key: str = field(details, "kmsKeyId", str, required=True)
    return key


def state_filter(call: Call) -> str | None:
    state = call.query("lifecycleState")
    if state is None:
        return None
    state = state.upper()  # the API documents the filter as case-insensitive
    if state not in STATES:
        raise errors.invalid(f"'lifecycleState' must be one of {list(STATES)}.")
    return state


def visible(state: str, wanted: str | None) -> bool:
    """Deleted resources are listed only when asked for by state."""
    return state == wanted if wanted is not None else state != "DELETED"


def require_active(state: str, what: str) -> None:
    if state != "ACTIVE":
        raise errors.incorrect_state(f"The {what} is {state}; the operation needs it ACTIVE.")
