"""Autoscaling policies: parsed from requests with the real service's 400s, returned as the SDK models.

``policyType`` ``scheduled`` → ``ScheduledPolicy`` (``capacity`` or ``resourceAction``, and an
``executionSchedule`` whose Quartz expression becomes a :class:`QuartzRecurrence`);
``threshold`` → ``ThresholdPolicy`` (``capacity`` and ``rules``, kept as data).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.ocid import new_ocid
from ocisim.services.scheduler_timing import QuartzRecurrence, RecurrenceError

POLICY_TYPES = ("scheduled", "threshold")
POWER_ACTIONS = ("STOP", "START", "SOFTSTOP", "SOFTRESET", "RESET")
OPERATORS = ("GT", "GTE", "LT", "LTE")
METRIC_TYPES = ("CPU_UTILIZATION", "MEMORY_UTILIZATION")
METRIC_SOURCES = ("COMPUTE_AGENT", "CUSTOM_QUERY")
_SEQ = itertools.count()


@dataclasses.dataclass
class Policy:
    id: str
    policy_type: str
    display_name: str | None
    is_enabled: bool
    time_created: float
    capacity: dict[str, Any] | None
    execution_schedule: dict[str, Any] | None
    resource_action: dict[str, Any] | None
    rules: list[dict[str, Any]] | None
    recurrence: QuartzRecurrence | None
    #: runs due at or before this instant have been handled
    cursor: float
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


def _obj(body: dict[str, Any], name: str, where: str, *, required: bool = False) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.missing(f"{where}.{name}")
        return None
    if not isinstance(value, dict):
        raise errors.invalid(f"'{where}.{name}' must be an object.")
    return value


def _int(body: dict[str, Any], name: str, where: str, *, required: bool = False, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.missing(f"{where}.{name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid(f"'{where}.{name}' must be an integer.")
    if value < minimum:
        raise errors.invalid(f"'{where}.{name}' must be at least {minimum}.")
    return value


def _capacity(raw: dict[str, Any], where: str, *, full: bool) -> dict[str, Any]:
    lo = _int(raw, "min", where, required=full)
    hi = _int(raw, "max", where, required=full)
    initial = _int(raw, "initial", where, required=True)
    if lo is not None and hi is not None and lo > hi:
        raise errors.invalid(f"'{where}.min' must not exceed '{where}.max'.")
    if initial is not None and ((lo is not None and initial < lo) or (hi is not None and initial > hi)):
        raise errors.invalid(f"'{where}.initial' must lie between min and max.")
    return {"max": hi, "min": lo, "initial": initial}


def _schedule(raw: dict[str, Any], where: str, now: float) -> tuple[dict[str, Any], QuartzRecurrence]:
    if raw.get("type") != "cron":
        raise errors.invalid(f"'{where}.type' must be 'cron'.")
    timezone = raw.get("timezone")
    if timezone is None:
        raise errors.missing(f"{where}.timezone")
    if timezone != "UTC":
        raise errors.invalid(f"'{where}.timezone' must be 'UTC'.")
    expression = raw.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise errors.missing(f"{where}.expression")
    try:
        recurrence = QuartzRecurrence(expression, now)
    except RecurrenceError as exc:
        raise errors.invalid(f"'{where}.expression': {exc}") from exc
    return {"type": "cron", "timezone": "UTC", "expression": recurrence.expression}, recurrence


def _rules(raw: Any, where: str, region_key: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise errors.missing(f"{where}.rules")
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(raw):
        at = f"{where}.rules[{i}]"
        if not isinstance(rule, dict):
            raise errors.invalid(f"'{at}' must be an object.")
        action = _obj(rule, "action", at, required=True)
        assert action is not None
        if action.get("type") != "CHANGE_COUNT_BY":
            raise errors.invalid(f"'{at}.action.type' must be CHANGE_COUNT_BY.")
        value = action.get("value")
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.invalid(f"'{at}.action.value' must be an integer.")
        metric = _obj(rule, "metric", at, required=True)
        assert metric is not None
        source = metric.get("metricSource", "COMPUTE_AGENT")
        if source not in METRIC_SOURCES:
            raise errors.invalid(f"'{at}.metric.metricSource' must be one of {list(METRIC_SOURCES)}.")
        if source == "COMPUTE_AGENT":
            if metric.get("metricType") not in METRIC_TYPES:
                raise errors.invalid(f"'{at}.metric.metricType' must be one of {list(METRIC_TYPES)}.")
            threshold = _obj(metric, "threshold", f"{at}.metric", required=True)
            assert threshold is not None
            if threshold.get("operator") not in OPERATORS:
                raise errors.invalid(f"'{at}.metric.threshold.operator' must be one of {list(OPERATORS)}.")
            _int(threshold, "value", f"{at}.metric.threshold", required=True)
            parsed_metric = {"metricSource": source, "metricType": metric["metricType"],
                             "threshold": {"operator": threshold["operator"], "value": threshold["value"]},
                             "pendingDuration": metric.get("pendingDuration")}
        else:
            for name in ("query", "namespace", "metricCompartmentId"):
                if not isinstance(metric.get(name), str):
                    raise errors.missing(f"{at}.metric.{name}")
            parsed_metric = {k: metric.get(k) for k in ("metricSource", "query", "namespace", "resourceGroup",
                                                        "metricCompartmentId", "pendingDuration")}
        rule_id = rule.get("id") if isinstance(rule.get("id"), str) else new_ocid("autoscalingpolicyrule", region_key)
        out.append({"action": {"type": "CHANGE_COUNT_BY", "value": value}, "displayName": rule.get("displayName"),
                    "id": rule_id, "metric": parsed_metric})
    return out


def parse_policy(body: Any, where: str, region_key: str, now: float) -> Policy:
    """A ``Create…PolicyDetails`` (or a policy merged with an update) → :class:`Policy`."""
    if not isinstance(body, dict):
        raise errors.invalid(f"'{where}' must be an object.")
    kind = body.get("policyType")
    if kind is None:
        raise errors.missing(f"{where}.policyType")
    if kind not in POLICY_TYPES:
        raise errors.invalid(f"'{where}.policyType' must be one of {list(POLICY_TYPES)}.")
    name = body.get("displayName")
    if name is not None and not isinstance(name, str):
        raise errors.invalid(f"'{where}.displayName' must be a string.")
    enabled = body.get("isEnabled", True)
    if not isinstance(enabled, bool):
        raise errors.invalid(f"'{where}.isEnabled' must be a boolean.")
    raw_capacity = _obj(body, "capacity", where, required=kind == "threshold")
    capacity = (_capacity(raw_capacity, f"{where}.capacity", full=kind == "threshold")
                if raw_capacity is not None else None)
    schedule = recurrence = action = rules = None
    if kind == "scheduled":
        raw_schedule = _obj(body, "executionSchedule", where, required=True)
        assert raw_schedule is not None
        schedule, recurrence = _schedule(raw_schedule, f"{where}.executionSchedule", now)
        raw_action = _obj(body, "resourceAction", where)
        if (raw_action is None) == (capacity is None):
            raise errors.invalid(f"'{where}' needs exactly one of 'capacity' and 'resourceAction'.")
        if raw_action is not None:
            if raw_action.get("actionType") != "power":
                raise errors.invalid(f"'{where}.resourceAction.actionType' must be 'power'.")
            if raw_action.get("action") not in POWER_ACTIONS:
                raise errors.invalid(f"'{where}.resourceAction.action' must be one of {list(POWER_ACTIONS)}.")
            action = {"actionType": "power", "action": raw_action["action"]}
    else:
        rules = _rules(body.get("rules"), where, region_key)
    return Policy(id=new_ocid("autoscalingpolicy", region_key), policy_type=kind, display_name=name,
                  is_enabled=enabled, time_created=now, capacity=capacity, execution_schedule=schedule,
                  resource_action=action, rules=rules, recurrence=recurrence, cursor=now)


def policy_json(p: Policy) -> dict[str, Any]:
    """A ``ScheduledPolicy`` or ``ThresholdPolicy``."""
    out: dict[str, Any] = {"capacity": p.capacity, "id": p.id, "displayName": p.display_name,
                           "policyType": p.policy_type, "timeCreated": rfc3339(p.time_created),
                           "isEnabled": p.is_enabled}
    if p.policy_type == "scheduled":
        out.update({"executionSchedule": p.execution_schedule, "resourceAction": p.resource_action})
    else:
        out["rules"] = p.rules
    return out


def policy_summary(p: Policy) -> dict[str, Any]:
    """An ``AutoScalingPolicySummary``."""
    return {"id": p.id, "displayName": p.display_name, "policyType": p.policy_type, "isEnabled": p.is_enabled}
