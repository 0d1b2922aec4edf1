"""Functions applications and functions (``FunctionsManagementClient``, ``/20260325`` in oci 2.189).

Application — found by ``display_name`` + tag in the compartment (OCI: unique per compartment). Function —
found by ``display_name`` + tag in its application (OCI: unique per application). Neither create takes an
``opc-retry-token`` in oci 2.189: idempotency comes from the name + tag lookup and OCI's unique names (a
409 on create is resolved by looking again). Updates answer 202 without a body: the adapter reads back.

Application properties:

=============================  =========  =====================================================
property                       in place   OCI
=============================  =========  =====================================================
``subnet_ids``                 immutable  not in ``UpdateApplicationDetails``; compared as a set
``shape``                      immutable  GENERIC_X86 | GENERIC_ARM | GENERIC_X86_ARM
``config``                     mutable    merged with each function's into its environment
``network_security_group_ids`` mutable    compared as a set
``syslog_url``                 mutable
``compartment_id``             immutable
=============================  =========  =====================================================

Function properties:

=======================  =========  ==========================================================
property                 in place   OCI
=======================  =========  ==========================================================
``application_id``       immutable
``image``                mutable    ``sourceDetails`` CONTAINER_IMAGE
``image_digest``         mutable    sent with the image; compared only when given
``memory_in_mbs``        mutable    128 to 3072
``timeout_in_seconds``   mutable    ≤ 300
``config``               mutable    (no secret values: see the vault secret adapter)
``compartment_id``       immutable  the application's
=======================  =========  ==========================================================

Lifecycle (both): CREATING/UPDATING → Pending, ACTIVE → Ready, DELETING → Deleting, FAILED and INACTIVE →
Failed, DELETED → gone.
"""

from __future__ import annotations

from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.functions.models

PHASES: dict[str, Phase | None] = {
    "CREATING": Phase.PENDING, "UPDATING": Phase.PENDING, "ACTIVE": Phase.READY, "INACTIVE": Phase.FAILED,
    "DELETING": Phase.DELETING, "DELETED": None, "FAILED": Phase.FAILED,
}


def _as_set(value: Any) -> Any:
    return sorted(value or [])


class ApplicationAdapter(OciAdapter):
    kind = ChildKind.APPLICATION
    phases = PHASES
    mutable = frozenset({"config", "network_security_group_ids", "syslog_url"})
    immutable = frozenset({"subnet_ids", "shape"})
    create_takes_retry_token = False

    @property
    def client(self) -> oci.functions.FunctionsManagementClient:
        return self.factory.functions_management(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_application(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"display_name": name} if name is not None else {}
        return list_all(self.client.list_applications, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.display_name
        return name

    def _properties(self, resource: Any) -> dict[str, Any]:
        return {"subnet_ids": list(resource.subnet_ids or []), "shape": resource.shape,
                "config": dict(resource.config or {}),
                "network_security_group_ids": list(resource.network_security_group_ids or []),
                "syslog_url": resource.syslog_url}

    def _normalize(self, field: str, value: Any) -> Any:
        if field in ("subnet_ids", "network_security_group_ids"):
            return _as_set(value)
        if field == "config":
            return dict(value or {})
        return value

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        details = M.CreateApplicationDetails(
            compartment_id=desired.compartment_id, display_name=desired.name,
            subnet_ids=list(props.get("subnet_ids", [])),
            shape=props.get("shape"), config=dict(props.get("config") or {}),
            network_security_group_ids=props.get("network_security_group_ids"), syslog_url=props.get("syslog_url"),
            freeform_tags=freeform_tags)
        return self.client.create_application(details)  # no opc_retry_token in the SDK operation

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        props = desired.properties
        values: dict[str, Any] = {}
        for difference in changed:
            value = props.get(difference.field)
            if difference.field == "config":
                value = dict(value or {})  # an empty dict clears it; None would mean "unchanged"
            elif difference.field == "network_security_group_ids":
                value = list(value or [])
            elif difference.field == "syslog_url":
                value = value or ""
            values[difference.field] = value
        return self.client.update_application(observed.ocid, M.UpdateApplicationDetails(**values))

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_application(ocid)


class FunctionAdapter(OciAdapter):
    kind = ChildKind.FUNCTION
    phases = PHASES
    mutable = frozenset({"image", "image_digest", "memory_in_mbs", "timeout_in_seconds", "config"})
    immutable = frozenset({"application_id"})
    create_takes_retry_token = False

    @property
    def client(self) -> oci.functions.FunctionsManagementClient:
        return self.factory.functions_management(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_function(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        application = desired.properties.get("application_id")
        if not application:
            raise ValueError(f"{desired.ref}: a function needs the application_id property")
        kwargs: dict[str, Any] = {"display_name": name} if name is not None else {}
        return list_all(self.client.list_functions, application_id=application, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.display_name
        return name

    def _properties(self, resource: Any) -> dict[str, Any]:
        source = resource.source_details
        return {"application_id": resource.application_id, "image": getattr(source, "image", None),
                "image_digest": getattr(source, "image_digest", None), "memory_in_mbs": resource.memory_in_mbs,
                "timeout_in_seconds": resource.timeout_in_seconds, "config": dict(resource.config or {}),
                "invoke_endpoint": resource.invoke_endpoint}

    def _normalize(self, field: str, value: Any) -> Any:
        return dict(value or {}) if field == "config" else value

    def _source(self, desired: Desired, model: Any = M.CreateContainerImageFunctionSourceDetails) -> Any:
        props = desired.properties
        return model(image=props.get("image"), image_digest=props.get("image_digest"))

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        details = M.CreateFunctionDetails(
            display_name=desired.name, application_id=props.get("application_id"), source_details=self._source(desired),
            memory_in_mbs=props.get("memory_in_mbs", 256), timeout_in_seconds=props.get("timeout_in_seconds"),
            config=dict(props.get("config") or {}), freeform_tags=freeform_tags)
        return self.client.create_function(details)  # no opc_retry_token in the SDK operation

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        props = desired.properties
        fields = {d.field for d in changed}
        details = M.UpdateFunctionDetails(
            source_details=(self._source(desired, M.UpdateContainerImageFunctionSourceDetails)
                            if fields & {"image", "image_digest"} else None),
            memory_in_mbs=props.get("memory_in_mbs") if "memory_in_mbs" in fields else None,
            timeout_in_seconds=props.get("timeout_in_seconds") if "timeout_in_seconds" in fields else None,
            config=dict(props.get("config") or {}) if "config" in fields else None)
        return self.client.update_function(observed.ocid, details)

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_function(ocid)
