"""Gather → plan → act for one ``SiemPipeline``; kopf-free, so it is driven by handlers and tests alike.

**Gather** (I/O): validate the spec, read the Kubernetes Secrets it names (the credentials' API key, the
SIEM token and CA bundle — values go only into the Vault secret child, never into a log, status or
Event), build the desired children, get the OCI client factory of the pipeline's credentials from the
shared :class:`~siem_operator.clients.FactoryCache`, and observe every desired child (by the OCID in status
first, else by name and tag) and every child the status knows that is no longer desired (orphans).

**Plan** (pure): :func:`siem_operator.planner.plan`.

**Act** (I/O): CREATE / UPDATE / DELETE in the plan's order. Before a create the child's *intent* (its
name and incarnation, no OCID yet) is written to status, and its OCID right after: a crash in between
is harmless because the adapters find an existing child by name and tag and the retry token makes a
re-sent create return the first one. A child whose known OCID is confirmed gone is re-created as the
next incarnation (a new retry token). Acting never waits for OCI: while something is CREATING the
result asks to be called again after :attr:`Settings.requeue_seconds`. When every action of a pass
succeeded the reconciler gathers again (instant provisioning converges in one call).

Errors are classified once (:mod:`siem_operator.errors`): terminal ones (the spec must change) end in
``Synced=False`` with no retry; the others come with a backoff delay. Status (conditions, children,
health) is written only when it changed (:mod:`siem_operator.conditions`). The :class:`Result` lists the
Kubernetes Events to post: one per OCI create, update, delete and failure, and one per condition change
that needs a person; a Warning the object already got, with the same substance, is left out
(:mod:`siem_operator.recorder`), so a failure that lasts is one Warning, not one per drift tick.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

import oci
import pydantic
from pydantic import SecretStr

from siem_operator import conditions, metrics
from siem_operator.children import Action, ActionType, Adapter, ChildKind, Desired, Observed, Phase, Ref, resolve
from siem_operator.clients import CredentialsSecretInvalid, FactoryCache, auth_for
from siem_operator.desired import MissingSecretValue, desired_children
from siem_operator.errors import Classified, ErrorKind, about_child, classify
from siem_operator.health import read_health
from siem_operator.kube import KubeApi
from siem_operator.naming import PipelineIdentity, retry_token
from siem_operator.planner import Observation, Plan, plan
from siem_operator.recorder import REPEAT_AFTER, WARNING, EventRecord, WarningLimiter
from siem_operator.spec import (
    ChildStatus,
    ConditionStatus,
    CredentialsType,
    Health,
    SiemPipelineSpec,
    parse_spec,
)
from siem_pipeline.oci_clients import OciClientFactory

log = logging.getLogger(__name__)

NORMAL: Final = "Normal"
#: the state stream's key in the desired children
STATE_STREAM: Final = Ref(ChildKind.STREAM, "state")


@dataclasses.dataclass(frozen=True)
class Settings:
    #: how soon to look again while a child is CREATING / DELETING or a dependency is not ready
    requeue_seconds: float = 10.0
    #: gather → plan → act passes in one call (each pass acts only when the previous one succeeded)
    max_passes: int = 12
    #: added to every function's configuration (e.g. the endpoint template in the sandbox)
    extra_config: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: read pipeline health from the state stream
    read_health: bool = True
    #: seconds before a Warning whose substance did not change is posted again (:mod:`siem_operator.recorder`)
    warning_repeat_seconds: float = REPEAT_AFTER


@dataclasses.dataclass(frozen=True)
class PipelineObject:
    """What the reconciler needs of a SiemPipeline object."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PipelineObject:
        meta = body.get("metadata") or {}
        return cls(namespace=meta.get("namespace") or "default", name=meta["name"], uid=meta["uid"],
                   generation=int(meta.get("generation") or 1), spec=dict(body.get("spec") or {}),
                   status=dict(body.get("status") or {}), deleting=bool(meta.get("deletionTimestamp")))

    @property
    def identity(self) -> PipelineIdentity:
        return PipelineIdentity(self.namespace, self.name, self.uid)


class Outcome:
    CONVERGED = "Converged"
    PROGRESSING = "Progressing"
    BLOCKED = "Blocked"
    INVALID = "Invalid"
    ERROR = "Error"
    DELETED = "Deleted"
    RETAINED = "Retained"
    SKIPPED = "Skipped"


@dataclasses.dataclass
class Result:
    outcome: str
    #: call again after this many seconds (None: nothing to wait for, or a terminal error)
    requeue_after: float | None = None
    #: a person must change something; retrying cannot help
    terminal: bool = False
    message: str = ""
    events: list[EventRecord] = dataclasses.field(default_factory=list)
    error: Classified | None = None
    #: the finalizer may go: deleting and nothing left (or Retain)
    released: bool = False
    plan: Plan | None = None


class _Failed(Exception):
    """A gather step failed; carries the classification (and the plan, when there was one)."""

    def __init__(self, error: Classified) -> None:
        super().__init__(error.message)
        self.error = error


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Reconciler:
    def __init__(self, kube: KubeApi, factories: FactoryCache, settings: Settings | None = None) -> None:
        self.kube = kube
        self.factories = factories
        self.settings = settings or Settings()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._finished: dict[str, float] = {}
        self.warnings = WarningLimiter(self.settings.warning_repeat_seconds)

    def _lock(self, uid: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(uid, threading.Lock())

    def since_last(self, uid: str) -> float:
        """Seconds since the last reconcile of ``uid`` finished (infinity when there was none)."""
        finished = self._finished.get(uid)
        return float("inf") if finished is None else time.monotonic() - finished

    def forget(self, uid: str) -> None:
        """The object is gone: drop its lock, factory use and metrics."""
        with self._locks_lock:
            self._locks.pop(uid, None)
            self._finished.pop(uid, None)
        self.factories.release(uid)
        self.warnings.forget(uid)
        metrics.forget_children(uid)

    # -- entry point ---------------------------------------------------------------------------------

    def reconcile(self, obj: PipelineObject, *, trigger: str = "change", attempt: int = 1,
                  wait: bool = True) -> Result:
        """One reconcile. ``wait=False`` (the drift timer) skips the object when a reconcile is running.

        The status is read afresh first: the body a handler got may predate the last reconcile's own
        status writes (its watch event not processed yet), and children's OCIDs must never go back."""
        lock = self._lock(obj.uid)
        if not lock.acquire(blocking=wait):
            return Result(Outcome.SKIPPED, message="a reconcile of this object is running")
        started = time.monotonic()
        result = Result(Outcome.ERROR)
        try:
            fresh = self.kube.read_status(obj.namespace, obj.name)
            if fresh is not None:
                obj = dataclasses.replace(obj, status=fresh)
            result = _Run(self, obj, attempt).run()
            # the same failure met again (a drift tick, a retry) is not a new Warning: the condition has it
            result.events = self.warnings.admit(obj.uid, obj.generation, result.events,
                                                clean=result.error is None)
            return result
        finally:
            self._finished[obj.uid] = time.monotonic()
            lock.release()
            metrics.RECONCILES.labels(trigger=trigger, outcome=result.outcome).inc()
            metrics.RECONCILE_DURATION.labels(outcome=result.outcome).observe(time.monotonic() - started)
            if result.error is not None:
                metrics.RECONCILE_ERRORS.labels(reason=result.error.reason).inc()


class _Run:
    """The state of one reconcile call."""

    def __init__(self, reconciler: Reconciler, obj: PipelineObject, attempt: int) -> None:
        self.r = reconciler
        self.obj = obj
        self.attempt = max(1, attempt)
        self.events: list[EventRecord] = []
        #: the status as last written (intermediate child writes included)
        self.status: dict[str, Any] = dict(obj.status)
        self.children: dict[Ref, ChildStatus] = {}
        for entry in obj.status.get("children") or []:
            try:
                child = ChildStatus.model_validate(entry)
                self.children[Ref(ChildKind(child.kind), child.key)] = child
            except (ValueError, pydantic.ValidationError):
                log.warning("%s/%s: ignoring a malformed status.children entry", obj.namespace, obj.name)
        self.spec: SiemPipelineSpec | None = None
        self.desired: list[Desired] = []
        self.adapters: dict[ChildKind, Adapter] = {}
        self.observed: dict[Ref, Observed | None] = {}
        self.factory: OciClientFactory | None = None
        self.attributes: dict[Ref, Mapping[str, Any]] = {}
        #: children acted on since the last gather
        self.acted: set[Ref] = set()

    def event(self, type_: str, reason: str, message: str, *, subject: str = "",
              substance: tuple[object, ...] | None = None) -> None:
        self.events.append(EventRecord(type_, reason, message, subject, substance))

    # -- the flow ------------------------------------------------------------------------------------

    def run(self) -> Result:
        try:
            try:
                self.prepare()
            except _Failed:
                raise
            except Exception as exc:  # noqa: BLE001 -- e.g. the Kubernetes API failing: classified, retried
                raise _Failed(classify(exc)) from None
        except _Failed as failed:
            if self.obj.deleting and not any(c.ocid for c in self.children.values()):
                # nothing was ever created (an invalid spec, say): nothing holds the finalizer
                self.event(NORMAL, "Deleted", f"no OCI resource of this SiemPipeline was ever recorded; "
                                              f"released ({failed.error.reason})")
                return Result(Outcome.DELETED, events=self.events, released=True)
            return self.finish(None, failed.error)
        last: Plan | None = None
        for _ in range(self.r.settings.max_passes):
            try:
                observations = self.gather()
            except _Failed as failed:
                return self.finish(last, failed.error)
            assert self.spec is not None
            last = plan(self.desired, observations, deleting=self.obj.deleting,
                        deletion_policy=self.spec.deletion_policy)
            if not last.executable:
                break
            error = self.act(last)
            if error is not None:
                return self.finish(last, error)
        return self.finish(last, None)

    def prepare(self) -> None:
        """Validate the spec, read its Secrets, build the desired children and the adapters."""
        obj = self.obj
        try:
            spec = self.spec = parse_spec(obj.spec)
        except pydantic.ValidationError as exc:
            raise _Failed(Classified(ErrorKind.INVALID_SPEC, _validation_message(exc))) from None
        secret_values: dict[str, SecretStr] = {}
        for key, ref in spec.kubernetes_secret_sources().items():
            data = self.r.kube.read_secret(obj.namespace, ref.name)
            value = (data or {}).get(ref.key)
            if value is not None:
                secret_values[key] = SecretStr(value)
            elif obj.deleting:  # deleting needs identities only, never the value
                secret_values[key] = SecretStr("")
        try:
            self.desired = desired_children(spec, obj.identity, secret_values=secret_values,
                                            extra_config=self.r.settings.extra_config)
        except MissingSecretValue as exc:
            raise _Failed(classify(exc)) from None
        except ValueError as exc:
            if not obj.deleting:
                raise _Failed(classify(exc)) from None
            # the spec cannot be built any more (an older CRD let a bad change through): delete what the
            # status knows, as orphans
            log.warning("%s/%s: deleting the children the status knows: %s", obj.namespace, obj.name, exc)
            self.desired = []
        credentials_data: dict[str, str] | None = None
        if spec.credentials.type is CredentialsType.API_KEY:
            assert spec.credentials.secret_ref is not None
            credentials_data = self.r.kube.read_secret(obj.namespace, spec.credentials.secret_ref.name)
            if credentials_data is None:
                raise _Failed(Classified(ErrorKind.SECRET_NOT_FOUND, (
                    f"the credentials Secret {spec.credentials.secret_ref.name!r} does not exist in namespace "
                    f"{obj.namespace!r}: create it (keys user, fingerprint, privateKey); retried periodically.")))
        try:
            auth = auth_for(spec.credentials, tenancy_id=spec.tenancy_id, region=spec.home_region,
                            secret_data=credentials_data)
        except CredentialsSecretInvalid as exc:
            raise _Failed(Classified(ErrorKind.INVALID_CREDENTIALS, f"{exc}: fix the Secret.")) from None
        self.factory, self.adapters = self.r.factories.adapters(obj.uid, auth, spec.home_region)

    def gather(self) -> dict[Ref, Observation]:
        """Observe every desired child and every orphan the status knows."""
        assert self.spec is not None
        ocids = {ref: c.ocid for ref, c in self.children.items() if c.ocid}
        attributes: dict[Ref, Mapping[str, Any]] = {}
        observations: dict[Ref, Observation] = {}
        # a later pass of the same call re-reads only what may have moved: what was acted on, or not Ready
        settled = {ref for ref, o in self.observed.items()
                   if o is not None and o.phase is Phase.READY and ref not in self.acted}
        previous, self.observed, self.acted = self.observed, {}, set()
        try:
            for child in self.desired:  # dependencies first, so their OCIDs resolve the dependents
                known = self.children.get(child.ref)
                known_ocid = known.ocid if known is not None else None
                try:
                    resolved: Desired | None = resolve(child, ocids, attributes)
                except KeyError:
                    resolved = None
                if resolved is None and not known_ocid:
                    observations[child.ref] = Observation(None)  # a dependency never existed: nor does it
                    self.observed[child.ref] = None
                    continue
                adapter = self.adapters[child.kind]
                if child.ref in settled:
                    observed = previous[child.ref]
                else:
                    observed = adapter.observe(resolved or child, known_ocid, self.obj.uid)
                self.observed[child.ref] = observed
                differences: tuple[Any, ...] = ()
                if observed is not None:
                    ocids[child.ref] = observed.ocid
                    attributes[child.ref] = observed.properties
                    if resolved is not None and not self.obj.deleting:
                        differences = tuple(adapter.differences(resolved, observed))
                observations[child.ref] = Observation(observed, differences)
            wanted = {d.ref for d in self.desired}
            for ref, entry in self.children.items():
                if ref in wanted or not entry.ocid:
                    continue
                # what the kind's lookups need besides the OCID (functions are listed per application)
                app = ocids.get(Ref(ChildKind.APPLICATION, "app"))
                properties = {"application_id": app} if ref.kind is ChildKind.FUNCTION and app else {}
                stub = Desired(kind=ref.kind, key=ref.key, name=entry.name or "", region=self.spec.home_region,
                               compartment_id=self.spec.compartment_id, properties=properties)
                orphan = self.adapters[ref.kind].observe(stub, entry.ocid, self.obj.uid)
                self.observed[ref] = orphan
                observations[ref] = Observation(orphan)
        except Exception as exc:  # noqa: BLE001 -- every failure is classified and reported, none is lost
            raise _Failed(self.failure("Observe", None, exc)) from None
        self.sync_children()
        return observations

    def sync_children(self) -> None:
        """Status children from the latest observations (gone ones dropped once confirmed)."""
        wanted = {d.ref: d for d in self.desired}
        updated: dict[Ref, ChildStatus] = {}
        for child in self.desired:
            entry = self.children.get(child.ref)
            observed = self.observed.get(child.ref)
            incarnation = entry.incarnation if entry is not None else 0
            if observed is not None:
                updated[child.ref] = ChildStatus(kind=child.kind.value, key=child.key, name=child.name,
                                                 ocid=observed.ocid, lifecycle_state=observed.lifecycle_state,
                                                 incarnation=incarnation)
            elif entry is not None and not self.obj.deleting:
                # gone, or never created: keep the intent (and the OCID, which tells a re-create apart)
                updated[child.ref] = entry.model_copy(update={"lifecycle_state": None})
        for ref, entry in self.children.items():
            if ref not in wanted and self.observed.get(ref) is not None:
                orphan = self.observed[ref]
                assert orphan is not None
                updated[ref] = entry.model_copy(update={"lifecycle_state": orphan.lifecycle_state})
        self.children = updated
        metrics.record_children(self.obj.uid, ((c.kind, c.lifecycle_state or "Absent") for c in updated.values()))

    # -- acting --------------------------------------------------------------------------------------

    def act(self, current: Plan) -> Classified | None:
        by_ref = {d.ref: d for d in self.desired}
        ocids = {ref: c.ocid for ref, c in self.children.items() if c.ocid}
        self.attributes = {ref: o.properties for ref, o in self.observed.items() if o is not None}
        creates = [a.ref for a in current.executable if a.type is ActionType.CREATE]
        if creates:  # intents first, in one write: after a crash the next reconcile knows each incarnation
            for ref in creates:
                self.children[ref] = self.intent(by_ref[ref])
            self.write_children()
        for action in current.executable:
            self.acted.add(action.ref)
            try:
                if action.type is ActionType.CREATE:
                    self.create(by_ref[action.ref], ocids)
                elif action.type is ActionType.UPDATE:
                    self.update(by_ref[action.ref], ocids, action)
                else:
                    self.delete(action)
            except Exception as exc:  # noqa: BLE001 -- classified, reported by Event and condition
                return self.failure(action.type.value, action, exc)
        return None

    def intent(self, child: Desired) -> ChildStatus:
        """The status entry of a child about to be created: its name and incarnation, no OCID yet."""
        entry = self.children.get(child.ref)
        incarnation = entry.incarnation if entry is not None else 0
        if entry is not None and entry.ocid:  # it existed and OCI confirmed it is gone: a new incarnation
            incarnation += 1
        return ChildStatus(kind=child.kind.value, key=child.key, name=child.name, incarnation=incarnation)

    def create(self, child: Desired, ocids: dict[Ref, str]) -> None:
        entry = self.children.get(child.ref)
        if entry is None or entry.ocid:  # act() records intents; this is only a safety net
            entry = self.children[child.ref] = self.intent(child)
            self.write_children()
        incarnation = entry.incarnation
        resolved = resolve(child, ocids, self.attributes)
        try:
            try:
                created = self.adapters[child.kind].create(resolved, self.obj.uid,
                                                           retry_token(self.obj.uid, child.ref, incarnation))
            except oci.exceptions.ServiceError as exc:
                if classify(exc).kind is not ErrorKind.RETRY_TOKEN_REUSED:
                    raise
                # this incarnation's token went with another request (its dependency was re-created since,
                # or a stale status hid an earlier attempt): the next incarnation has a fresh token
                incarnation += 1
                self.children[child.ref] = ChildStatus(kind=child.kind.value, key=child.key, name=child.name,
                                                       incarnation=incarnation)
                self.write_children()
                created = self.adapters[child.kind].create(resolved, self.obj.uid,
                                                           retry_token(self.obj.uid, child.ref, incarnation))
        except Exception:
            metrics.OCI_ACTIONS.labels(kind=child.kind.value, action="create", result="error").inc()
            raise
        metrics.OCI_ACTIONS.labels(kind=child.kind.value, action="create", result="ok").inc()
        ocids[child.ref] = created.ocid
        self.attributes[child.ref] = created.properties
        self.children[child.ref] = ChildStatus(kind=child.kind.value, key=child.key, name=child.name,
                                               ocid=created.ocid, lifecycle_state=created.lifecycle_state,
                                               incarnation=incarnation)
        self.write_children()
        if incarnation:  # the previous one disappeared behind the operator's back: a repair
            self.event(NORMAL, "Recreated", f"{child.ref} was gone from OCI: created it again as {child.name} "
                                            f"({created.ocid}, {created.lifecycle_state}){_request(created)}")
        else:
            self.event(NORMAL, "Created", f"created {child.ref} in OCI as {child.name} ({created.ocid}, "
                                          f"{created.lifecycle_state}){_request(created)}")

    def update(self, child: Desired, ocids: Mapping[Ref, str], action: Action) -> None:
        observed = self.observed.get(child.ref)
        assert observed is not None
        try:
            updated = self.adapters[child.kind].update(resolve(child, ocids, self.attributes), observed)
        except Exception:
            metrics.OCI_ACTIONS.labels(kind=child.kind.value, action="update", result="error").inc()
            raise
        metrics.OCI_ACTIONS.labels(kind=child.kind.value, action="update", result="ok").inc()
        fields = ", ".join(d.field for d in action.differences)  # names only: a value may be a secret
        self.event(NORMAL, "Updated", f"updated {child.ref} ({updated.ocid}) in OCI: {fields}{_request(updated)}")

    def delete(self, action: Action) -> None:
        observed = self.observed.get(action.ref)
        assert observed is not None
        try:
            self.adapters[action.ref.kind].delete(observed)
        except Exception:
            metrics.OCI_ACTIONS.labels(kind=action.ref.kind.value, action="delete", result="error").inc()
            raise
        metrics.OCI_ACTIONS.labels(kind=action.ref.kind.value, action="delete", result="ok").inc()
        why = "the SiemPipeline is being deleted" if self.obj.deleting else "it is no longer part of the spec"
        self.event(NORMAL, "Deleted", f"asked OCI to delete {action.ref} ({observed.ocid}): {why}")

    def failure(self, step: str, action: Action | None, exc: BaseException) -> Classified:
        error = classify(exc)
        if action is not None:
            error = about_child(error, action.ref, action.type.value.lower())
        what = f"{step} {action.ref}" if action is not None else step
        log.warning("%s/%s: %s failed: %s", self.obj.namespace, self.obj.name, what, error.message)
        # its substance is what OCI said, not the request id each attempt gets
        self.event(WARNING, f"{step}Failed", f"{what} failed: {error.message}",
                   subject=str(action.ref) if action is not None else "",
                   substance=(error.reason, error.status, error.code, error.operation))
        return error

    # -- status --------------------------------------------------------------------------------------

    def children_status(self) -> list[ChildStatus]:
        return list(self.children.values())

    def write_children(self) -> None:
        children = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in self.children_status()]
        self.r.kube.patch_status(self.obj.namespace, self.obj.name, {"children": children})
        self.status["children"] = children

    def health(self) -> Health | None:
        assert self.spec is not None
        state = self.observed.get(STATE_STREAM)
        if (not self.r.settings.read_health or self.obj.deleting or self.factory is None or state is None
                or state.lifecycle_state != "ACTIVE"):
            return None
        try:
            return read_health(self.factory, self.spec.home_region, state.ocid, list(self.spec.sources.regions))
        except Exception as exc:  # noqa: BLE001 -- health is best effort; the previous value is kept
            log.warning("%s/%s: could not read health from the state stream: %s", self.obj.namespace,
                        self.obj.name, classify(exc).message)
            return None

    def finish(self, last: Plan | None, error: Classified | None) -> Result:
        obj = self.obj
        spec = self.spec
        children = self.children_status() if spec is not None else None
        health = self.health() if spec is not None and error is None and last is not None else None
        before = self.status
        status, changed = conditions.compute_status(
            before, generation=obj.generation, now=_now(), plan=last, error=error,
            suspended=bool(spec and spec.suspend), deleting=obj.deleting, children=children, health=health,
            destination=spec.destination if spec is not None and not obj.deleting else None)
        if obj.deleting and last is not None and last.deleted:
            changed = False  # the object is about to go; nothing to tell
        if changed:
            self.r.kube.patch_status(obj.namespace, obj.name, status)
            self.announce(before, status)
        return self.result(last, error)

    def announce(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """An Event for each condition that turned False with a new reason (what a person must look at), and for
        ``DestinationSecure=False`` at each new spec generation (a plain-HTTP destination is a choice the spec
        makes: said once per change of it, never at every tick)."""
        old = {c.get("type"): c for c in before.get("conditions") or []}
        for cond in after.get("conditions") or []:
            previous = old.get(cond["type"]) or {}
            renewed = (cond["type"] == conditions.DESTINATION_SECURE
                       and previous.get("observedGeneration") != cond.get("observedGeneration"))
            if cond["status"] == ConditionStatus.FALSE.value and (
                    renewed or previous.get("status") != cond["status"] or previous.get("reason") != cond["reason"]):
                if cond["reason"] in ("Creating", "Deleting"):
                    continue  # progress, not a problem
                if any(e.type == WARNING and cond["message"] in e.message for e in self.events):
                    continue  # the failure's own Event already says it
                kind = NORMAL if cond["reason"] == "Suspended" else WARNING
                self.event(kind, cond["reason"], f"{cond['type']}=False: {cond['message']}", subject=cond["type"],
                           substance=(cond["status"], cond["reason"]))
            elif (cond["status"] == ConditionStatus.TRUE.value and previous.get("status") == "False"
                  and cond["type"] == conditions.READY):
                self.event(NORMAL, cond["reason"], f"Ready: {cond['message']}")
        lost_before = int((before.get("health") or {}).get("lostToRetentionCount") or 0)
        lost = int((after.get("health") or {}).get("lostToRetentionCount") or 0)
        if lost > lost_before:
            self.event(WARNING, "EventsLostToRetention",
                       f"{lost - lost_before} event(s) were dropped by the events stream's retention before the export "
                       f"delivered them ({lost} in all; the state stream's gap/events records say where): the export "
                       "was stopped or behind for longer than spec.streams.retentionHours")

    def result(self, last: Plan | None, error: Classified | None) -> Result:
        settings = self.r.settings
        if error is not None:
            outcome = Outcome.INVALID if error.terminal else Outcome.ERROR
            return Result(outcome, requeue_after=error.delay(self.attempt), terminal=error.terminal,
                          message=error.message, events=self.events, error=error, plan=last)
        assert last is not None
        if self.obj.deleting:
            if last.deleted:
                outcome = Outcome.RETAINED if last.retained else Outcome.DELETED
                if last.retained:
                    names = ", ".join(f"{ref} ({self.children[ref].ocid})" if ref in self.children else str(ref)
                                      for ref in last.retained)
                    self.event(NORMAL, "Retained", f"deletionPolicy is Retain: left in OCI and no longer managed: "
                                                   f"{names}")
                return Result(outcome, events=self.events, released=True, plan=last)
            return Result(Outcome.PROGRESSING, requeue_after=settings.requeue_seconds, events=self.events,
                          message="waiting for OCI to confirm deletions", plan=last)
        if last.waiting or last.unready or last.executable:
            return Result(Outcome.PROGRESSING, requeue_after=settings.requeue_seconds, events=self.events,
                          message="; ".join(a.reason for a in last.waiting[:3]), plan=last)
        if last.blocked:
            return Result(Outcome.BLOCKED, terminal=True, events=self.events,
                          message=" ".join(a.reason for a in last.blocked), plan=last)
        return Result(Outcome.CONVERGED, events=self.events, plan=last)


def _request(observed: Observed) -> str:
    return f" (opc-request-id {observed.opc_request_id})" if observed.opc_request_id else ""


def _validation_message(exc: pydantic.ValidationError) -> str:
    """pydantic's errors without the input values (a spec holds no secret, but keep messages short)."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "spec"
        parts.append(f"spec.{where}: {err.get('msg', 'invalid')}".replace("spec.spec", "spec"))
    return "the spec is invalid: " + "; ".join(parts) + ". Fix the SiemPipeline spec."

