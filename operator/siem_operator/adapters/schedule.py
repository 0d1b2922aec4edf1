"""Resource Scheduler schedules that invoke a function (``ScheduleClient``, ``/20240430``).

Found by ``display_name`` + tag in the compartment. The schedule names one resource, the function, with an
optional BODY parameter (the invoke payload). Properties:

=======================  =========  ===================================================================
property                 in place   OCI
=======================  =========  ===================================================================
``function_id``          mutable    ``resources[0].id``
``body``                 mutable    ``resources[0].parameters`` BODY value (str, or JSON-able data)
``recurrence_type``      mutable    CRON (default) | ICAL
``recurrence_details``   mutable    the cron expression or RRULE
``action``               mutable    START_RESOURCE (default): what invokes a function
``time_zone``            mutable    ``localTimeZone``
``description``          mutable
``is_enabled``           mutable    ACTIVE / INACTIVE through ``activateSchedule`` / ``deactivateSchedule``
``compartment_id``       immutable
=======================  =========  ===================================================================

Lifecycle: CREATING/UPDATING → Pending, ACTIVE and INACTIVE → Ready, DELETING → Deleting, FAILED → Failed,
DELETED → gone. When ``is_enabled`` changes together with other fields, the update sends the fields first;
the (de)activation needs a settled schedule and follows on the next reconcile.
"""

from __future__ import annotations

import json
from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.resource_scheduler.models
DEFAULTS: dict[str, Any] = {"recurrence_type": "CRON", "action": "START_RESOURCE", "is_enabled": True}


def _body_value(value: Any) -> Any:
    """The BODY parameter as OCI stores it: a string as is, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class ScheduleAdapter(OciAdapter):
    kind = ChildKind.SCHEDULE
    phases = {"CREATING": Phase.PENDING, "UPDATING": Phase.PENDING, "ACTIVE": Phase.READY, "INACTIVE": Phase.READY,
              "DELETING": Phase.DELETING, "DELETED": None, "FAILED": Phase.FAILED}
    mutable = frozenset({"function_id", "body", "recurrence_type", "recurrence_details", "action", "time_zone",
                         "description", "is_enabled"})
    immutable = frozenset[str]()
    create_takes_retry_token = True

    @property
    def client(self) -> oci.resource_scheduler.ScheduleClient:
        return self.factory.schedules(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_schedule(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"display_name": name} if name is not None else {}
        return list_all(self.client.list_schedules, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.display_name
        return name

    def _properties(self, resource: Any) -> dict[str, Any]:
        resources = resource.resources or []
        first = resources[0] if resources else None
        body = None
        for parameter in (first.parameters or []) if first is not None else []:
            if parameter.parameter_type == "BODY":
                body = getattr(parameter, "value", None)
        return {"function_id": first.id if first is not None else None, "body": body,
                "recurrence_type": resource.recurrence_type, "recurrence_details": resource.recurrence_details,
                "action": resource.action, "time_zone": resource.local_time_zone,
                "description": resource.description, "is_enabled": resource.lifecycle_state != "INACTIVE"}

    def _normalize(self, field: str, value: Any) -> Any:
        if value is None and field in DEFAULTS:
            return DEFAULTS[field]
        if field == "body":
            return _body_value(value)
        if field == "description":
            return value or None
        return value

    def _resources(self, desired: Desired) -> list[Any]:
        props = desired.properties
        body = _body_value(props.get("body"))
        parameters = [M.BodyParameter(value=body)] if body is not None else None
        return [M.Resource(id=props.get("function_id"), parameters=parameters)]

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        details = M.CreateScheduleDetails(
            compartment_id=desired.compartment_id, display_name=desired.name, description=props.get("description"),
            action=props.get("action", DEFAULTS["action"]),
            recurrence_type=props.get("recurrence_type", DEFAULTS["recurrence_type"]),
            recurrence_details=props.get("recurrence_details"), resources=self._resources(desired),
            local_time_zone=props.get("time_zone"), freeform_tags=freeform_tags)
        # created ACTIVE; a disabled schedule is deactivated by the next reconcile's update, once settled
        return self.client.create_schedule(details, opc_retry_token=retry_token)

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        props = desired.properties
        fields = {d.field for d in changed}
        others = fields - {"is_enabled"}
        if others:
            details = M.UpdateScheduleDetails(
                action=props.get("action") if "action" in others else None,
                recurrence_type=props.get("recurrence_type") if "recurrence_type" in others else None,
                recurrence_details=props.get("recurrence_details") if "recurrence_details" in others else None,
                resources=self._resources(desired) if others & {"function_id", "body"} else None,
                local_time_zone=props.get("time_zone") if "time_zone" in others else None,
                description=(props.get("description") or "") if "description" in others else None)
            return self.client.update_schedule(observed.ocid, details)
        if props.get("is_enabled", True):
            return self.client.activate_schedule(observed.ocid)
        return self.client.deactivate_schedule(observed.ocid)

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_schedule(ocid)
