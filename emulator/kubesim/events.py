"""One storage for Events, two APIs: ``v1`` Events and ``events.k8s.io/v1`` Events.

As on a real server, both are views of the same objects: an Event posted through one API is listed
by the other (so ``kubectl describe``, which reads ``v1`` Events, shows what an operator posted as
``events.k8s.io/v1``). Storage is the ``v1`` form.
"""

from __future__ import annotations

from typing import Any

# (events.k8s.io/v1 field, core/v1 field)
_RENAMES = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("deprecatedSource", "source"),
    ("reportingController", "reportingComponent"),
)
_SAME = ("metadata", "reason", "type", "action", "related", "reportingInstance", "eventTime", "series")


def to_core(event: dict[str, Any]) -> dict[str, Any]:
    """An ``events.k8s.io/v1`` Event in its ``v1`` storage form."""
    core: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for key in _SAME:
        if key in event:
            core[key] = event[key]
    for new, old in _RENAMES:
        if new in event:
            core[old] = event[new]
    if "source" not in core and event.get("reportingController"):
        core["source"] = {"component": event["reportingController"]}
    return core


def from_core(core: dict[str, Any]) -> dict[str, Any]:
    """The ``events.k8s.io/v1`` view of a stored ``v1`` Event."""
    event: dict[str, Any] = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for key in _SAME:
        if key in core:
            event[key] = core[key]
    for new, old in _RENAMES:
        if old in core:
            event[new] = core[old]
    if "reportingController" not in event and (core.get("source") or {}).get("component"):
        event["reportingController"] = core["source"]["component"]
    if not event.get("eventTime"):
        # events.k8s.io requires eventTime; a v1 Event posted without one shows its first sighting.
        stamp = (core.get("firstTimestamp") or core.get("lastTimestamp")
                 or (core.get("metadata") or {}).get("creationTimestamp"))
        if stamp:
            event["eventTime"] = stamp.replace("Z", ".000000Z") if stamp.endswith("Z") and "." not in stamp else stamp
    return event
