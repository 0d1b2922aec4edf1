"""The ``Ready``, ``Synced`` and ``DestinationSecure`` conditions, and the status written after each reconcile. Pure.

- ``Ready``: the pipeline's OCI resources exist and work (``Available``), or why not: ``Creating``,
  ``Unavailable`` (a resource failed), ``Suspended``, ``Deleting``, or the classified error that
  prevented looking (``SecretNotFound``, ``NotAuthorized``, …) or that stops the creation until a person
  acts (``LimitExceeded``, ``NotAuthorized``, ``NameConflict``, ``InvalidSpec``: never a silent
  ``Creating``).
- ``Synced``: the last reconcile applied the spec (``ReconcileSuccess``), or why not: an immutable field
  changed (``ImmutableFieldChanged``), a resource failed (``ChildFailed``), or the classified error.
- ``DestinationSecure``: the export reaches the destination over verified TLS (``TLS``), or not
  (``InsecureDestination``: an ``http://`` URL or syslog over plain TCP, which the spec allows inside a trusted
  network). It does not make the pipeline unready; the operator posts a Warning Event for it once per spec
  generation.

All carry ``observedGeneration``; reasons are CamelCase and messages say what to do. Setting a condition
equal to the current one changes nothing (``lastTransitionTime`` is kept; it moves only when the status
does), and :func:`compute_status` says whether anything changed, so an idle reconcile writes nothing.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from siem_operator.children import ActionType, Ref
from siem_operator.planner import Plan
from siem_operator.spec import ChildStatus, Condition, ConditionStatus, Destination, Health, SiemPipelineStatus

if TYPE_CHECKING:  # only the type: this module stays free of the OCI SDK
    from siem_operator.errors import Classified

READY: Final = "Ready"
SYNCED: Final = "Synced"
DESTINATION_SECURE: Final = "DestinationSecure"
#: longest list of resources named in a message
MAX_NAMED: Final = 5


class Reason(enum.StrEnum):
    AVAILABLE = "Available"
    CREATING = "Creating"
    UNAVAILABLE = "Unavailable"
    SUSPENDED = "Suspended"
    DELETING = "Deleting"
    RECONCILE_SUCCESS = "ReconcileSuccess"
    IMMUTABLE_FIELD_CHANGED = "ImmutableFieldChanged"
    CHILD_FAILED = "ChildFailed"
    RECONCILING = "Reconciling"
    TLS = "TLS"
    INSECURE_DESTINATION = "InsecureDestination"


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(conditions: Sequence[Condition], new: Condition) -> tuple[list[Condition], bool]:
    """``conditions`` with ``new`` in place of the one of its type, and whether anything changed.

    An equal condition (status, reason, message, observedGeneration) is a no-op; a condition whose status
    did not change keeps its ``lastTransitionTime``.
    """
    out = list(conditions)
    for i, old in enumerate(out):
        if old.type != new.type:
            continue
        if (old.status, old.reason, old.message, old.observed_generation) == (
                new.status, new.reason, new.message, new.observed_generation):
            return out, False
        if old.status == new.status:
            new = new.model_copy(update={"last_transition_time": old.last_transition_time})
        out[i] = new
        return out, True
    out.append(new)
    return out, True


def _names(refs: Sequence[Ref]) -> str:
    named = ", ".join(str(r) for r in refs[:MAX_NAMED])
    return named + (f" and {len(refs) - MAX_NAMED} more" if len(refs) > MAX_NAMED else "")


def _condition(type_: str, status: ConditionStatus, reason: str, message: str, generation: int,
               now: datetime.datetime) -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message,
                     last_transition_time=now.replace(microsecond=0),  # Kubernetes times have seconds
                     observed_generation=generation)


def ready_condition(plan: Plan | None, *, generation: int, now: datetime.datetime, suspended: bool = False,
                    deleting: bool = False, error: Classified | None = None) -> Condition:
    """``Ready`` from the plan of this reconcile (None when the error came before a plan)."""
    def cond(status: ConditionStatus, reason: str, message: str) -> Condition:
        return _condition(READY, status, reason, message, generation, now)

    if deleting:
        if plan is not None and plan.retained:
            return cond(ConditionStatus.FALSE, Reason.DELETING, f"deletionPolicy is Retain: {len(plan.retained)} OCI "
                        "resources are left in place and no longer managed")
        waiting = [a.ref for a in plan.actions] if plan is not None else []
        return cond(ConditionStatus.FALSE, Reason.DELETING,
                    f"deleting the pipeline's OCI resources; remaining: {_names(waiting)}" if waiting
                    else "deleting the pipeline's OCI resources")
    if plan is None:
        if error is None:
            return cond(ConditionStatus.UNKNOWN, Reason.RECONCILING, "not reconciled yet")
        status = ConditionStatus.FALSE if error.pipeline_broken else ConditionStatus.UNKNOWN
        return cond(status, error.reason, error.message)
    failed = [a.ref for a in plan.blocked if not a.differences]
    if failed:
        return cond(ConditionStatus.FALSE, Reason.UNAVAILABLE,
                    f"{_names(failed)} failed in OCI: delete it in OCI and the operator re-creates it")
    if plan.unready and error is not None and error.needs_person:
        # not merely creating: stuck until a person acts (a service limit, a policy, a name taken)
        return cond(ConditionStatus.FALSE, error.reason,
                    f"{plan.desired_count - len(plan.unready)} of {plan.desired_count} OCI resources are ready; "
                    f"{error.message}")
    if plan.unready:
        return cond(ConditionStatus.FALSE, Reason.CREATING,
                    f"{plan.desired_count - len(plan.unready)} of {plan.desired_count} OCI resources are ready; "
                    f"waiting for {_names(plan.unready)}")
    if suspended:
        return cond(ConditionStatus.FALSE, Reason.SUSPENDED, "spec.suspend is true: the trigger is disabled and no "
                    "run starts; set it to false to resume where the export stopped")
    return cond(ConditionStatus.TRUE, Reason.AVAILABLE, f"all {plan.desired_count} OCI resources are ready")


def synced_condition(plan: Plan | None, *, generation: int, now: datetime.datetime,
                     error: Classified | None = None) -> Condition:
    """``Synced``: did this reconcile apply the spec?"""
    def cond(status: ConditionStatus, reason: str, message: str) -> Condition:
        return _condition(SYNCED, status, reason, message, generation, now)

    if error is not None:
        return cond(ConditionStatus.FALSE, error.reason, error.message)
    if plan is None:
        return cond(ConditionStatus.UNKNOWN, Reason.RECONCILING, "not reconciled yet")
    immutable = [a for a in plan.blocked if a.differences]
    if immutable:
        return cond(ConditionStatus.FALSE, Reason.IMMUTABLE_FIELD_CHANGED, " ".join(a.reason for a in immutable))
    failed = plan.blocked
    if failed:
        return cond(ConditionStatus.FALSE, Reason.CHILD_FAILED, " ".join(a.reason for a in failed))
    parts = []
    changes = plan.executable
    if changes:
        parts.append(f"applied {len(changes)} change(s)")
    waiting = [a.ref for a in plan.waiting]
    if waiting:
        parts.append(f"waiting for {_names(waiting)}")
    if plan.retained:
        parts.append(f"{_names(plan.retained)} no longer in the spec but kept (deletionPolicy Retain)")
    message = "; ".join(parts) if parts else "the OCI resources match the spec"
    return cond(ConditionStatus.TRUE, Reason.RECONCILE_SUCCESS, message)


def destination_condition(destination: Destination, *, generation: int, now: datetime.datetime) -> Condition:
    """``DestinationSecure``: is the destination reached over TLS? Never a value, only the field that says no."""
    plaintext = destination.plaintext
    if plaintext is None:
        extra = " and spec.destination.caBundle" if destination.ca_bundle is not None else ""
        return _condition(DESTINATION_SECURE, ConditionStatus.TRUE, Reason.TLS,
                          f"the {destination.type} destination is reached over TLS, its certificate verified against "
                          f"the public CAs{extra}", generation, now)
    token = " and its token" if destination.token is not None else ""
    secure = "https://" if destination.syslog is None else "transport: TLS"
    return _condition(DESTINATION_SECURE, ConditionStatus.FALSE, Reason.INSECURE_DESTINATION,
                      f"{plaintext}: the export sends the events{token} unencrypted and cannot tell the receiver "
                      f"from an impostor; use {secure} unless the network to the SIEM is trusted", generation, now)


def _known_status(old: Mapping[str, Any] | None) -> SiemPipelineStatus:
    """The fields of a stored status this module owns (kopf keeps its own next to them)."""
    if not old:
        return SiemPipelineStatus()
    fields = {key: old[key] for key in ("observedGeneration", "conditions", "children", "health") if key in old}
    return SiemPipelineStatus.model_validate(fields)


def status_dict(status: SiemPipelineStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def compute_status(old: Mapping[str, Any] | None, *, generation: int, now: datetime.datetime,
                   plan: Plan | None, error: Classified | None = None, suspended: bool = False,
                   deleting: bool = False, children: Sequence[ChildStatus] | None = None,
                   health: Health | None = None, destination: Destination | None = None) -> tuple[dict[str, Any], bool]:
    """The status after a reconcile (as the JSON to patch) and whether it differs from ``old``.

    ``children`` and ``health`` replace the stored ones when given and are kept otherwise; ``destination`` (the
    spec's, when it was valid) sets ``DestinationSecure``, which is kept otherwise.
    """
    previous = _known_status(old)
    conditions = list(previous.conditions)
    conditions, _ = set_condition(conditions, ready_condition(plan, generation=generation, now=now,
                                                               suspended=suspended, deleting=deleting, error=error))
    conditions, _ = set_condition(conditions, synced_condition(plan, generation=generation, now=now, error=error))
    if destination is not None:
        conditions, _ = set_condition(conditions, destination_condition(destination, generation=generation, now=now))
    new = previous.model_copy(update={
        "observed_generation": generation, "conditions": conditions,
        "children": list(children) if children is not None else previous.children,
        "health": health if health is not None else previous.health})
    before, after = status_dict(previous), status_dict(new)
    return after, before != after


def action_summary(plan: Plan) -> dict[str, int]:
    """Counts per action type (for logs and metrics)."""
    return {t.value: len(plan.of_type(t)) for t in ActionType if plan.of_type(t)}
