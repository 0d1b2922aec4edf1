"""Resource Scheduler schedules and runs as stored, as requested (with the service's 400s) and as returned.

``schedule_json`` gives ``Schedule`` (``ScheduleSummary`` has the same keys); ``parse_*`` validate the
request bodies of ``CreateSchedule`` and ``UpdateSchedule``.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from typing import Any

import orjson

from ocisim import errors
from ocisim.clock import parse_rfc3339, rfc3339
from ocisim.framework import Lifecycle, field
from ocisim.ocid import ocid_type
from ocisim.services.scheduler_timing import Recurrence, next_run

VERSION = "20240430"
ACTIONS = ("START_RESOURCE", "STOP_RESOURCE", "BACKUP_RESOURCE")
RECURRENCE_TYPES = ("CRON", "ICAL")
STATES = ("ACTIVE", "INACTIVE", "CREATING", "UPDATING", "DELETING", "DELETED", "FAILED")
PARAMETER_TYPES = ("BODY", "HEADER", "PATH", "QUERY")
FILTER_ATTRIBUTES = ("COMPARTMENT_ID", "RESOURCE_TYPE", "DEFINED_TAGS", "TIME_CREATED", "LIFECYCLE_STATE")
#: Resources one schedule may name.
MAX_RESOURCES = 25
#: Runs remembered for the control API.
MAX_RUNS_KEPT = 10_000
_SEQ = itertools.count()


@dataclasses.dataclass
class Schedule:
    id: str
    compartment_id: str
    display_name: str
    description: str | None
    action: str
    recurrence_type: str
    recurrence_details: str
    recurrence: Recurrence
    resources: list[dict[str, Any]]
    resource_filters: list[dict[str, Any]]
    time_starts: float | None
    time_ends: float | None
    local_time_zone: str | None
    time_created: float
    lifecycle: Lifecycle
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    #: runs due at or before this instant have been handled (fired, skipped, or not wanted)
    cursor: float
    time_updated: float | None = None
    time_last_run: float | None = None
    last_run_status: str | None = None
    skipped_runs: int = 0
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class Run:
    id: str
    region: str
    schedule_id: str
    action: str
    time_scheduled: float
    time_fired: float
    status: str
    work_request_id: str
    manual: bool
    results: list[dict[str, Any]]
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "region": self.region, "scheduleId": self.schedule_id, "action": self.action,
                "timeScheduled": rfc3339(self.time_scheduled), "timeFired": rfc3339(self.time_fired),
                "status": self.status, "workRequestId": self.work_request_id, "manual": self.manual,
                "resources": self.results}


# -- request parsing ------------------------------------------------------------------------------


def parse_time(body: dict[str, Any], name: str) -> float | None:
    text = field(body, name, str)
    if text is None:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError as exc:
        raise errors.invalid(f"'{name}' must be an RFC 3339 date-time.") from exc


def parse_enum(body: dict[str, Any], name: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
    value: str | None = field(body, name, str, required=required)
    if value is not None and value not in allowed:
        raise errors.invalid(f"'{name}' must be one of {list(allowed)}.")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise errors.invalid(f"'{what}' must map strings to strings.")
    return dict(value)


def parse_resources(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = field(body, "resources", list, default=[])
    if len(raw) > MAX_RESOURCES:
        raise errors.limit_exceeded(f"A schedule can name at most {MAX_RESOURCES} resources ({len(raw)} given).")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise errors.invalid(f"'resources[{i}]' must be an object.")
        rid = field(item, "id", str, required=True)
        if ocid_type(rid) is None:
            raise errors.invalid(f"'resources[{i}].id' is not an OCID.")
        metadata = _str_map(item["metadata"], f"resources[{i}].metadata") if item.get("metadata") is not None else None
        parameters: list[dict[str, Any]] | None = None
        if item.get("parameters") is not None:
            if not isinstance(item["parameters"], list):
                raise errors.invalid(f"'resources[{i}].parameters' must be a list.")
            parameters = [_parameter(p, f"resources[{i}].parameters[{j}]") for j, p in enumerate(item["parameters"])]
            if sum(p["parameterType"] == "BODY" for p in parameters) > 1:
                raise errors.invalid(f"'resources[{i}]' has more than one BODY parameter.")
        out.append({"id": rid, "metadata": metadata, "parameters": parameters})
    return out


def _parameter(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid(f"'{where}' must be an object.")
    kind = value.get("parameterType")
    if kind not in PARAMETER_TYPES:
        raise errors.invalid(f"'{where}.parameterType' must be one of {list(PARAMETER_TYPES)}.")
    content = value.get("value")
    if kind != "BODY" and content is not None:
        content = _str_map(content, f"{where}.value")
    return {"parameterType": kind, "value": content}


def parse_filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = field(body, "resourceFilters", list, default=[])
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"resourceFilters[{i}]"
        if not isinstance(item, dict):
            raise errors.invalid(f"'{where}' must be an object.")
        attribute = item.get("attribute")
        if attribute not in FILTER_ATTRIBUTES:
            raise errors.invalid(f"'{where}.attribute' must be one of {list(FILTER_ATTRIBUTES)}.")
        value = item.get("value")
        if attribute in ("COMPARTMENT_ID", "TIME_CREATED"):
            if not isinstance(value, str):
                raise errors.invalid(f"'{where}.value' must be a string.")
        elif attribute in ("RESOURCE_TYPE", "LIFECYCLE_STATE"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise errors.invalid(f"'{where}.value' must be a list of strings.")
        elif not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise errors.invalid(f"'{where}.value' must be a list of defined-tag values.")
        parsed: dict[str, Any] = {"attribute": attribute, "value": value}
        if attribute == "COMPARTMENT_ID":
            include = item.get("shouldIncludeChildCompartments")
            if include is not None and not isinstance(include, bool):
                raise errors.invalid(f"'{where}.shouldIncludeChildCompartments' must be a boolean.")
            parsed["shouldIncludeChildCompartments"] = include
        if attribute == "TIME_CREATED":
            if item.get("condition") not in ("EQUAL", "BEFORE", "AFTER"):
                raise errors.invalid(f"'{where}.condition' must be EQUAL, BEFORE or AFTER.")
            parsed["condition"] = item["condition"]
        out.append(parsed)
    return out


def schedule_json(s: Schedule, now: float) -> dict[str, Any]:
    """A ``Schedule`` (``ScheduleSummary`` has the same keys)."""
    state = s.lifecycle.settle(now)
    upcoming = (next_run(s.recurrence, s.cursor, not_before=s.time_starts, not_after=s.time_ends)
                if state == "ACTIVE" else None)
    return {
        "id": s.id, "compartmentId": s.compartment_id, "displayName": s.display_name, "description": s.description,
        "action": s.action, "recurrenceDetails": s.recurrence_details, "recurrenceType": s.recurrence_type,
        "resourceFilters": s.resource_filters, "resources": s.resources,
        "timeStarts": rfc3339(s.time_starts) if s.time_starts is not None else None,
        "timeEnds": rfc3339(s.time_ends) if s.time_ends is not None else None,
        "localTimeZone": s.local_time_zone, "timeCreated": rfc3339(s.time_created),
        "timeUpdated": rfc3339(s.time_updated) if s.time_updated is not None else None,
        "timeLastRun": rfc3339(s.time_last_run) if s.time_last_run is not None else None,
        "timeNextRun": rfc3339(upcoming) if upcoming is not None else None,
        "lastRunStatus": s.last_run_status, "lifecycleState": state,
        "freeformTags": s.freeform_tags, "definedTags": s.defined_tags, "systemTags": {},
    }


def invoke_payload(resource: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The invoke body (the BODY parameter) and extra headers (HEADER parameters) of a resource."""
    body, headers = b"", {}
    for parameter in resource.get("parameters") or ():
        if parameter["parameterType"] == "BODY" and parameter["value"] is not None:
            value = parameter["value"]
            body = value.encode() if isinstance(value, str) else orjson.dumps(value)
        elif parameter["parameterType"] == "HEADER" and parameter["value"]:
            headers.update(parameter["value"])
    return body, headers
