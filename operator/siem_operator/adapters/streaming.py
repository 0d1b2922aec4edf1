"""Stream pools and streams (Streaming admin ``/20180418``, ``StreamAdminClient``).

Stream pool — found by ``name`` + tag in the compartment; properties:

=============================  =========  ==========================================================
property                       in place   OCI
=============================  =========  ==========================================================
``custom_encryption_key_id``   mutable    ``UpdateStreamPool.customEncryptionKeyDetails``; back to None: immutable
``private_endpoint_subnet_id`` immutable  set only at creation
``compartment_id``             immutable  a move is ``changeCompartment``, never done by the operator
=============================  =========  ==========================================================

Stream — found by ``name`` + tag in the compartment (names are unique among a pool's live streams);
properties: ``partitions``, ``retention_in_hours``, ``stream_pool_id`` — all immutable. OCI itself refuses
to change partitions and retention; ``UpdateStream`` could move a stream to another pool, but a move
changes where producers and consumers connect, so the operator reports it instead of doing it.
Only tags could change in place, and the operator changes no tag. ``CreateStream`` takes no
``opc-retry-token`` in oci 2.189: idempotency comes from the name + tag lookup and the pool's unique names.

Lifecycle (both): CREATING/UPDATING → Pending, ACTIVE → Ready, DELETING → Deleting, FAILED → Failed,
DELETED → gone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.streaming.models

PHASES: dict[str, Phase | None] = {
    "CREATING": Phase.PENDING, "UPDATING": Phase.PENDING, "ACTIVE": Phase.READY,
    "DELETING": Phase.DELETING, "DELETED": None, "FAILED": Phase.FAILED,
}


class StreamPoolAdapter(OciAdapter):
    kind = ChildKind.STREAM_POOL
    phases = PHASES
    mutable = frozenset({"custom_encryption_key_id"})
    immutable = frozenset({"private_endpoint_subnet_id"})
    create_takes_retry_token = True

    @property
    def client(self) -> oci.streaming.StreamAdminClient:
        return self.factory.stream_admin(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_stream_pool(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"name": name} if name is not None else {}
        return list_all(self.client.list_stream_pools, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.name
        return name

    def _properties(self, resource: Any) -> dict[str, Any]:
        key = getattr(resource, "custom_encryption_key", None)
        private = getattr(resource, "private_endpoint_settings", None)
        return {"custom_encryption_key_id": key.kms_key_id if key is not None else None,
                "private_endpoint_subnet_id": private.subnet_id if private is not None else None}

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        key = props.get("custom_encryption_key_id")
        subnet = props.get("private_endpoint_subnet_id")
        details = M.CreateStreamPoolDetails(
            compartment_id=desired.compartment_id, name=desired.name, freeform_tags=freeform_tags,
            custom_encryption_key_details=M.CustomEncryptionKeyDetails(kms_key_id=key) if key else None,
            private_endpoint_details=M.PrivateEndpointDetails(subnet_id=subnet) if subnet else None)
        return self.client.create_stream_pool(details, opc_retry_token=retry_token)

    def differences(self, desired: Desired, observed: Observed) -> list[Difference]:
        # a key can be set or replaced in place; going back to Oracle-managed keys (None) is not offered by
        # UpdateStreamPool's model in a way we could verify, so it is reported, not attempted
        return [dataclasses.replace(d, mutable=False)
                if d.field == "custom_encryption_key_id" and d.desired is None else d
                for d in super().differences(desired, observed)]

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        key = desired.properties["custom_encryption_key_id"]  # the only mutable field, never None here
        details = M.UpdateStreamPoolDetails(custom_encryption_key_details=M.CustomEncryptionKeyDetails(kms_key_id=key))
        return self.client.update_stream_pool(observed.ocid, details)

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_stream_pool(ocid)


class StreamAdapter(OciAdapter):
    kind = ChildKind.STREAM
    phases = PHASES
    mutable = frozenset[str]()
    immutable = frozenset({"partitions", "retention_in_hours", "stream_pool_id"})
    create_takes_retry_token = False

    @property
    def client(self) -> oci.streaming.StreamAdminClient:
        return self.factory.stream_admin(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_stream(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"name": name} if name is not None else {}
        return list_all(self.client.list_streams, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.name
        return name

    def _same_identity(self, desired: Desired, resource: Any) -> bool:
        # names are unique per pool: with a pool given, a same-named stream of another pool is someone else's
        pool = desired.properties.get("stream_pool_id")
        return bool(resource.name == desired.name and (pool is None or resource.stream_pool_id == pool))

    def _properties(self, resource: Any) -> dict[str, Any]:
        return {"partitions": resource.partitions, "retention_in_hours": resource.retention_in_hours,
                "stream_pool_id": resource.stream_pool_id, "messages_endpoint": resource.messages_endpoint}

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        pool = props.get("stream_pool_id")
        details = M.CreateStreamDetails(
            name=desired.name, partitions=props.get("partitions", 1),
            retention_in_hours=props.get("retention_in_hours"),
            stream_pool_id=pool, compartment_id=None if pool else desired.compartment_id, freeform_tags=freeform_tags)
        return self.client.create_stream(details)  # no opc_retry_token in the SDK operation

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        raise AssertionError("a stream has no field the operator changes in place")

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_stream(ocid)
