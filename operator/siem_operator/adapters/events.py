"""Events rules (``EventsClient``, ``/20181201``).

Found by ``display_name`` + tag in the compartment (OCI allows same-named rules; the operator still refuses to
create beside a foreign same-named one, see :mod:`siem_operator.adapters.base`). Properties:

==================  =========  ====================================================================
property            in place   OCI
==================  =========  ====================================================================
``condition``       mutable    a JSON filter, given as a ``dict`` or a JSON string; compared parsed
``actions``         mutable    list of ``{"action_type": "ONS"|"OSS"|"FAAS", "topic_id"|"stream_id"|
                               "function_id": OCID, "is_enabled": bool = True, "description": str}``;
                               compared as a set; ``UpdateRule`` replaces them all (max 10)
``is_enabled``      mutable
``description``     mutable
``compartment_id``  immutable  (``changeCompartment`` exists; the operator never moves)
==================  =========  ====================================================================

Lifecycle: CREATING/UPDATING → Pending, ACTIVE and INACTIVE → Ready, DELETING → Deleting, FAILED → Failed,
DELETED → gone. Rule summaries carry no actions: the adapter always reads the rule itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.events.models

#: action type → (the attribute naming its target, the SDK's create-details class)
TARGETS: dict[str, tuple[str, Any]] = {
    "ONS": ("topic_id", M.CreateNotificationServiceActionDetails),
    "OSS": ("stream_id", M.CreateStreamingServiceActionDetails),
    "FAAS": ("function_id", M.CreateFaaSActionDetails),
}


def _action_key(action: Mapping[str, Any]) -> tuple[str, str, bool, str]:
    kind = str(action.get("action_type", "")).upper()
    if kind not in TARGETS:
        raise ValueError(f"an Events rule action needs action_type ONS, OSS or FAAS, not {kind!r}")
    target = TARGETS[kind][0]
    enabled = action.get("is_enabled")
    return kind, str(action.get(target) or ""), enabled is None or bool(enabled), str(action.get("description") or "")


def _condition(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class EventRuleAdapter(OciAdapter):
    kind = ChildKind.EVENT_RULE
    phases = {"CREATING": Phase.PENDING, "UPDATING": Phase.PENDING, "ACTIVE": Phase.READY, "INACTIVE": Phase.READY,
              "DELETING": Phase.DELETING, "DELETED": None, "FAILED": Phase.FAILED}
    mutable = frozenset({"condition", "actions", "is_enabled", "description"})
    immutable = frozenset[str]()
    create_takes_retry_token = True

    @property
    def client(self) -> oci.events.EventsClient:
        return self.factory.events(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_rule(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"display_name": name} if name is not None else {}
        return list_all(self.client.list_rules, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.display_name
        return name

    def _properties(self, resource: Any) -> dict[str, Any]:
        actions = []
        for action in (resource.actions.actions if resource.actions is not None else None) or []:
            kind = action.action_type
            target = TARGETS.get(kind, ("", None))[0]
            actions.append({"action_type": kind, target: getattr(action, target, None),
                            "is_enabled": action.is_enabled, "description": action.description})
        return {"condition": resource.condition, "actions": actions, "is_enabled": resource.is_enabled,
                "description": resource.description}

    def _normalize(self, field: str, value: Any) -> Any:
        if field == "condition":
            return _condition(value)
        if field == "actions":
            return sorted(_action_key(a) for a in value or [])
        if field == "description":
            return value or None
        if field == "is_enabled":
            return True if value is None else bool(value)
        return value

    def _details(self, desired: Desired) -> dict[str, Any]:
        props = desired.properties
        condition = props.get("condition", "{}")
        actions = []
        for action in props.get("actions", []):
            kind, target, enabled, description = _action_key(action)
            attribute, model = TARGETS[kind]
            actions.append(model(is_enabled=enabled, description=description or None, **{attribute: target}))
        return {"condition": condition if isinstance(condition, str) else json.dumps(condition, sort_keys=True),
                "actions": M.ActionDetailsList(actions=actions), "is_enabled": props.get("is_enabled", True),
                "description": props.get("description")}

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        details = M.CreateRuleDetails(display_name=desired.name, compartment_id=desired.compartment_id,
                                      freeform_tags=freeform_tags, **self._details(desired))
        return self.client.create_rule(details, opc_retry_token=retry_token)

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        full = self._details(desired)
        details = M.UpdateRuleDetails(**{d.field: full[d.field] for d in changed})
        return self.client.update_rule(observed.ocid, details)

    def _delete_call(self, ocid: str) -> Any:
        return self.client.delete_rule(ocid)
