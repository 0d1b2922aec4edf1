"""Events resources: rules and their actions as stored, as returned, and as requested.

``Rule`` and ``RuleSummary`` (which has no actions) get exactly the keys of the SDK models; a stored
action is a ``StreamingServiceAction`` (OSS), ``NotificationServiceAction`` (ONS) or ``FaaSAction``
(FAAS), each with its own ``id``, ``lifecycleState`` and ``lifecycleMessage``. The ``parse_*``
helpers validate request bodies with the 400s the real service gives: at most 10 actions, a
``condition`` that is a string holding a JSON filter.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from typing import Any

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.eventmatch import ConditionError, parse_condition
from ocisim.framework import Lifecycle, field
from ocisim.ocid import new_ocid, ocid_type

STATES = ("CREATING", "ACTIVE", "INACTIVE", "UPDATING", "DELETING", "DELETED", "FAILED")
MAX_ACTIONS = 10
MAX_NAME_CHARS = 255
MAX_DESCRIPTION_CHARS = 1000
#: actionType → (the key naming its target, the OCID type that key takes)
ACTION_TARGETS: dict[str, tuple[str, str]] = {
    "OSS": ("streamId", "stream"),
    "ONS": ("topicId", "onstopic"),
    "FAAS": ("functionId", "fnfunc"),
}
_SEQ = itertools.count()


@dataclasses.dataclass
class Action:
    id: str
    action_type: str
    target_id: str
    is_enabled: bool
    description: str | None


@dataclasses.dataclass
class Rule:
    id: str
    display_name: str
    description: str | None
    is_enabled: bool
    condition_text: str
    condition: dict[str, Any]
    compartment_id: str
    actions: list[Action]
    time_created: float
    lifecycle: Lifecycle
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    time_deleted: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


def action_json(action: Action, state: str) -> dict[str, Any]:
    key, _type = ACTION_TARGETS[action.action_type]
    return {"actionType": action.action_type, "id": action.id, "lifecycleMessage": "", "lifecycleState": state,
            "isEnabled": action.is_enabled, "description": action.description, key: action.target_id}


def rule_json(rule: Rule, now: float, *, summary: bool = False) -> dict[str, Any]:
    """A ``Rule``, or a ``RuleSummary`` (no actions, no lifecycle message)."""
    state = rule.lifecycle.settle(now)
    out: dict[str, Any] = {
        "id": rule.id, "displayName": rule.display_name, "description": rule.description,
        "lifecycleState": state, "condition": rule.condition_text, "compartmentId": rule.compartment_id,
        "isEnabled": rule.is_enabled, "timeCreated": rfc3339(rule.time_created),
        "freeformTags": rule.freeform_tags, "definedTags": rule.defined_tags,
    }
    if not summary:
        out["actions"] = {"actions": [action_json(a, state) for a in rule.actions]}
        out["lifecycleMessage"] = None
    return out


# -- requests ------------------------------------------------------------------------------------


def parse_display_name(body: dict[str, Any]) -> str:
    name = str(field(body, "displayName", str, required=True))
    if len(name) > MAX_NAME_CHARS:
        raise errors.invalid(f"'displayName' must be at most {MAX_NAME_CHARS} characters.")
    return name


def parse_description(body: dict[str, Any]) -> str | None:
    description = field(body, "description", str)
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise errors.invalid(f"'description' must be at most {MAX_DESCRIPTION_CHARS} characters.")
    return None if description is None else str(description)


def parse_is_enabled(body: dict[str, Any], *, required: bool) -> bool | None:
    value = field(body, "isEnabled", bool, required=required)
    return None if value is None else bool(value)


def parse_rule_condition(body: dict[str, Any], *, required: bool) -> tuple[str, dict[str, Any]] | None:
    """The condition text and its parsed filter; 400 with the reason when it is not a valid filter."""
    if body.get("condition") is None:
        if required:
            raise errors.missing("condition")
        return None
    text = body["condition"]
    try:
        return str(text), parse_condition(text)
    except ConditionError as exc:
        raise errors.invalid(str(exc)) from exc


def parse_actions(body: dict[str, Any], region_key: str, *, required: bool) -> list[Action] | None:
    """``actions: {actions: [...]}``: 1 to 10 actions, each with its type's target OCID."""
    wrapper = field(body, "actions", dict, required=required)
    if wrapper is None:
        return None
    items = wrapper.get("actions")
    if items is None:
        raise errors.missing("actions.actions")
    if not isinstance(items, list):
        raise errors.invalid("'actions.actions' must be an array.")
    if not items:
        raise errors.invalid("A rule needs at least one action.")
    if len(items) > MAX_ACTIONS:
        raise errors.invalid(f"A rule can have at most {MAX_ACTIONS} actions; {len(items)} were given.")
    actions: list[Action] = []
    for i, item in enumerate(items):
        where = f"actions.actions[{i}]"
        if not isinstance(item, dict):
            raise errors.invalid(f"'{where}' must be an object.")
        action_type = item.get("actionType")
        if action_type is None:
            raise errors.missing(f"{where}.actionType")
        if action_type not in ACTION_TARGETS:
            raise errors.invalid(f"'{where}.actionType' must be one of {sorted(ACTION_TARGETS)}.")
        key, wanted_type = ACTION_TARGETS[action_type]
        target = item.get(key)
        if target is None or target == "":
            raise errors.missing(f"{where}.{key}")
        if not isinstance(target, str) or ocid_type(target) != wanted_type:
            raise errors.invalid(f"'{where}.{key}' must be the OCID of a {wanted_type}.")
        enabled = item.get("isEnabled")
        if enabled is None:
            raise errors.missing(f"{where}.isEnabled")
        if not isinstance(enabled, bool):
            raise errors.invalid(f"'{where}.isEnabled' must be a boolean.")
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            raise errors.invalid(f"'{where}.description' must be a string.")
        actions.append(Action(id=new_ocid("eventaction", region_key), action_type=action_type, target_id=target,
                              is_enabled=enabled, description=description))
    return actions
