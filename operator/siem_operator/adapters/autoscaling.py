"""Schedule-based autoscaling configurations of an instance pool (``AutoScalingClient``, ``/20181001``).

The seed architecture's trigger: one scheduled policy fires on a Quartz cron expression, Autoscaling emits
"Autoscaling Configuration - Scaling Action", and an Events rule on that event starts the pipeline. The
instance pool is given by OCID (the operator does not own it). Found by ``display_name`` + tag in the
compartment. The configuration holds exactly one scheduled policy, named ``siem-trigger``. Properties:

==========================  =========  ===============================================================
property                    in place   OCI
==========================  =========  ===============================================================
``instance_pool_id``        immutable  ``resource.id`` (OCI: one configuration per pool)
``execution_schedule``      mutable    the policy's Quartz cron expression (UTC), ``UpdateAutoScalingPolicy``
``capacity``                mutable    ``{"initial", "min", "max"}``: the pool size the policy sets
``resource_action``         mutable    STOP | START | SOFTSTOP | SOFTRESET | RESET instead of a capacity
``is_enabled``              mutable    the configuration's
``cool_down_in_seconds``    mutable    ≥ 300
``compartment_id``          immutable
==========================  =========  ===============================================================

Autoscaling configurations have **no lifecycle state** in the API: one that answers is Ready (reported with
``lifecycle_state`` "ACTIVE"); deleted, it answers 404 (confirmed by a list). Both creates and the policy
update take an ``opc-retry-token``.
"""

from __future__ import annotations

from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.autoscaling.models
POLICY_NAME = "siem-trigger"
#: what ``lifecycle_state`` says of a configuration that exists (the API has no state)
EXISTS = "ACTIVE"
POLICY_FIELDS = frozenset({"execution_schedule", "capacity", "resource_action"})


class AutoscalingConfigurationAdapter(OciAdapter):
    kind = ChildKind.AUTOSCALING_CONFIGURATION
    phases = {EXISTS: Phase.READY}
    mutable = POLICY_FIELDS | {"is_enabled", "cool_down_in_seconds"}
    immutable = frozenset({"instance_pool_id"})
    create_takes_retry_token = True

    @property
    def client(self) -> oci.autoscaling.AutoScalingClient:
        return self.factory.autoscaling(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_auto_scaling_configuration(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"display_name": name} if name is not None else {}
        return list_all(self.client.list_auto_scaling_configurations, compartment_id=desired.compartment_id,
                        **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.display_name
        return name

    def _state_of(self, resource: Any) -> str:
        return EXISTS

    @staticmethod
    def _policy(resource: Any) -> Any:
        policies = getattr(resource, "policies", None) or []
        named = [p for p in policies if p.display_name == POLICY_NAME]
        return (named or policies or [None])[0]

    def _properties(self, resource: Any) -> dict[str, Any]:
        policy = self._policy(resource)
        capacity = getattr(policy, "capacity", None)
        action = getattr(policy, "resource_action", None)
        schedule = getattr(policy, "execution_schedule", None)
        return {
            "instance_pool_id": resource.resource.id if resource.resource is not None else None,
            "execution_schedule": getattr(schedule, "expression", None),
            "capacity": ({"initial": capacity.initial, "min": capacity.min, "max": capacity.max}
                         if capacity is not None else None),
            "resource_action": getattr(action, "action", None),
            "is_enabled": resource.is_enabled, "cool_down_in_seconds": resource.cool_down_in_seconds,
            "policy_id": getattr(policy, "id", None),
        }

    def _normalize(self, field: str, value: Any) -> Any:
        if field == "capacity" and value:
            return {k: value.get(k) for k in ("initial", "min", "max") if value.get(k) is not None}
        if field == "is_enabled" and value is None:
            return True
        return value

    def _policy_parts(self, desired: Desired) -> dict[str, Any]:
        props = desired.properties
        capacity = props.get("capacity")
        action = props.get("resource_action")
        return {"display_name": POLICY_NAME, "is_enabled": True,
                "execution_schedule": M.CronExecutionSchedule(timezone="UTC",
                                                              expression=props.get("execution_schedule")),
                "capacity": M.Capacity(**capacity) if capacity else None,
                "resource_action": M.ResourcePowerAction(action=action) if action else None}

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        details = M.CreateAutoScalingConfigurationDetails(
            compartment_id=desired.compartment_id, display_name=desired.name, freeform_tags=freeform_tags,
            is_enabled=props.get("is_enabled", True), cool_down_in_seconds=props.get("cool_down_in_seconds"),
            resource=M.InstancePoolResource(id=props.get("instance_pool_id")),
            policies=[M.CreateScheduledPolicyDetails(**self._policy_parts(desired))])
        return self.client.create_auto_scaling_configuration(details, opc_retry_token=retry_token)

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        props = desired.properties
        fields = {d.field for d in changed}
        response = None
        if fields & {"is_enabled", "cool_down_in_seconds"}:
            details = M.UpdateAutoScalingConfigurationDetails(
                is_enabled=props.get("is_enabled") if "is_enabled" in fields else None,
                cool_down_in_seconds=props.get("cool_down_in_seconds") if "cool_down_in_seconds" in fields else None)
            response = self.client.update_auto_scaling_configuration(observed.ocid, details)
        if fields & POLICY_FIELDS:
            policy_id = observed.properties.get("policy_id")
            if policy_id is None:  # someone removed it: put it back
                response = self.client.create_auto_scaling_policy(
                    observed.ocid, M.CreateScheduledPolicyDetails(**self._policy_parts(desired)))
            else:
                response = self.client.update_auto_scaling_policy(
                    observed.ocid, policy_id, M.UpdateScheduledPolicyDetails(**self._policy_parts(desired)))
        return response

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_auto_scaling_configuration(ocid)
