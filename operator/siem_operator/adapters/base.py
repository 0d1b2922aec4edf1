"""The flow every OCI adapter shares; each kind's module supplies its calls and its per-kind data.

Per kind, as data (the way oracle/oci-service-operator keeps it): ``phases`` folds OCI lifecycle states
into :class:`Phase` (``None``: the resource is gone), ``mutable`` and ``immutable`` name the
:attr:`Desired.properties` keys that can / cannot change in place. Only the keys a ``Desired`` gives are
compared (an absent key means "OCI's default, whatever it is"); ``compartment_id`` is always compared
and always immutable. Unknown keys are a programming error of the caller and raise ``ValueError``.

Identity (``observe``): the OCID from status, else the OCID the spec adopts, else a lookup by the
deterministic name *and* the :data:`PIPELINE_UID_TAG` freeform tag in the desired compartment. A 404 on a
known OCID is confirmed by a list before the child is declared gone; a resource listed again despite the
404 raises :class:`DeletionNotConfirmed`.

``create`` is idempotent and refuses to shadow: it first lists the child's identity; a resource of
ours (tagged with this pipeline's uid) is returned as is (a crash between create and the status write,
or a kind whose create takes no retry token), a same-named resource that is *not* ours raises
:class:`ChildConflict` (never adopted by name, never duplicated beside it). Then it creates, tagged,
with ``opc_retry_token`` where the SDK operation accepts one, and returns at once (CREATING → PENDING).
A 409 "already exists" from the create itself (e.g. a retry after a lost response of a token-less
create) is resolved by the same lookup.

``update`` and ``delete`` act only on a child whose phase allows it (else :class:`ChildBusy`) and never
wait. ``delete`` of a child already gone, or already DELETING, is a no-op; that it is gone is confirmed by
the next ``observe``. An adopted child is observed and updated but never created, and not tagged (neither
``differences`` nor ``update`` knows the pipeline uid). Every call goes through a client of the
:class:`~siem_pipeline.oci_clients.OciClientFactory` (whose retry policy also retries 409 ``IncorrectState``:
a write racing a lifecycle transition can hold the caller for the policy's duration), and each
:class:`Observed` keeps the ``opc-request-id`` of the call that produced it (for an update, of the write).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import oci

from siem_operator.adapters.errors import (
    AdoptionTargetMissing,
    ChildBusy,
    ChildConflict,
    DeletionNotConfirmed,
)
from siem_operator.children import PIPELINE_UID_TAG, Attr, ChildKind, Desired, Difference, Observed, Phase, Ref
from siem_pipeline.oci_clients import OciClientFactory

log = logging.getLogger(__name__)

#: 409 codes with which OCI refuses a create because the identity is taken
ALREADY_EXISTS_CODES = frozenset({"NotAuthorizedOrResourceAlreadyExists", "Conflict", "AlreadyExists"})
#: the property compared for every kind: a compartment move is never done in place
COMPARTMENT = "compartment_id"

ServiceError = oci.exceptions.ServiceError


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ServiceError) and exc.status == 404


def is_already_exists(exc: BaseException) -> bool:
    return isinstance(exc, ServiceError) and exc.status == 409 and exc.code in ALREADY_EXISTS_CODES


def list_all(method: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """Every item of a paged list call (bare arrays and ``{"items": […]}`` collections alike)."""
    items: list[Any] = oci.pagination.list_call_get_all_results(method, **kwargs).data
    return items


def tags_of(resource: Any) -> dict[str, str]:
    return dict(getattr(resource, "freeform_tags", None) or {})


class OciAdapter(abc.ABC):
    """One OCI kind in one region: the :class:`~siem_operator.children.Adapter` protocol."""

    kind: ChildKind
    #: OCI lifecycle state → phase; None means gone. States not listed count as PENDING (wait and see).
    phases: ClassVar[Mapping[str, Phase | None]]
    #: Desired.properties keys that OCI can change in place
    mutable: ClassVar[frozenset[str]]
    #: Desired.properties keys that OCI cannot change in place (besides ``compartment_id``)
    immutable: ClassVar[frozenset[str]]
    #: whether the SDK's create operation takes ``opc_retry_token`` (oci 2.189)
    create_takes_retry_token: ClassVar[bool]
    #: PENDING states in which OCI accepts a delete (e.g. a subscription awaiting confirmation)
    deletable_while: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, factory: OciClientFactory, region: str) -> None:
        self.factory = factory
        self.region = region

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self.region!r})"

    # -- the kind's calls ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def _get(self, ocid: str) -> Any:
        """The SDK response of the kind's GET (raises ``ServiceError``)."""

    @abc.abstractmethod
    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        """Summaries of ``desired``'s kind in its compartment (its application, topic or vault where the kind
        lives in one), filtered server-side by ``name`` when given and the API can; callers filter again."""

    @abc.abstractmethod
    def _name_of(self, resource: Any) -> str | None:
        """The name the kind is found by (``display_name``, ``name``, ``secret_name`` …)."""

    def _same_identity(self, desired: Desired, resource: Any) -> bool:
        return self._name_of(resource) == desired.name

    def _ocid_of(self, resource: Any) -> str:
        ocid: str = resource.id
        return ocid

    def _state_of(self, resource: Any) -> str:
        state: str = resource.lifecycle_state
        return state

    @abc.abstractmethod
    def _properties(self, resource: Any) -> dict[str, Any]:
        """The observed properties, under the names and in the shape of :attr:`Desired.properties`."""

    @abc.abstractmethod
    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        """The SDK create call; returns its response."""

    @abc.abstractmethod
    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        """The SDK update call(s) for the mutable ``changed`` fields; returns the last response."""

    @abc.abstractmethod
    def _delete_call(self, ocid: str) -> Any:
        """The SDK delete call; returns its response."""

    def _normalize(self, field: str, value: Any) -> Any:
        """A value in a shape comparable between desired and observed (e.g. parsed JSON, sorted lists)."""
        return value

    def _equal(self, field: str, desired: Any, observed: Any) -> bool:
        return bool(self._normalize(field, desired) == self._normalize(field, observed))

    def _shown(self, field: str, value: Any) -> Any:
        """The value as a :class:`Difference` shows it (the secret adapter masks its content)."""
        return value

    def _reuse_own(self, resource: Any) -> Observed:
        """``create`` found one of ours already: read it (the secret adapter revives a deleted one)."""
        observed = self._read(self._ocid_of(resource))
        if observed is None:
            raise ChildBusy(self.kind, f"{self._ocid_of(resource)} is going away; create it again once it is gone")
        return observed

    def _blocks_create(self, resource: Any) -> bool:
        """Whether a listed resource takes the identity a create needs (default: any not gone)."""
        return self._phase(self._state_of(resource)) is not None

    # -- shared machinery ---------------------------------------------------------------------------------

    def _phase(self, state: str) -> Phase | None:
        return self.phases.get(state, Phase.PENDING)

    def _observed(self, resource: Any, request_id: str | None) -> Observed | None:
        state = self._state_of(resource)
        phase = self._phase(state)
        if phase is None:
            return None
        properties = {COMPARTMENT: resource.compartment_id, **self._properties(resource)}
        return Observed(kind=self.kind, ocid=self._ocid_of(resource), phase=phase, lifecycle_state=str(state),
                        properties=properties, freeform_tags=tags_of(resource), opc_request_id=request_id)

    def _read(self, ocid: str) -> Observed | None:
        """GET the child; None when gone (DELETED-like state). Raises ``ServiceError`` (404 included)."""
        response = self._get(ocid)
        return self._observed(response.data, response.request_id)

    def _check(self, desired: Desired) -> None:
        if desired.kind is not self.kind:
            raise ValueError(f"{self!r} handles {self.kind}, not {desired.kind} ({desired.ref})")
        if desired.region != self.region:
            raise ValueError(f"{self!r} serves region {self.region}; {desired.ref} is in {desired.region}")
        unknown = set(desired.properties) - self.mutable - self.immutable
        if unknown:
            raise ValueError(f"{desired.ref}: unknown {self.kind} properties {sorted(unknown)}; "
                             f"expected some of {sorted(self.mutable | self.immutable)}")

    @staticmethod
    def _refs(value: Any) -> Iterable[Ref | Attr]:
        if isinstance(value, Ref | Attr):
            yield value
        elif isinstance(value, list | tuple):
            for item in value:
                yield from OciAdapter._refs(item)
        elif isinstance(value, Mapping):
            for item in value.values():
                yield from OciAdapter._refs(item)

    def _unresolved(self, desired: Desired) -> bool:
        return any(True for value in desired.properties.values() for _ in self._refs(value))

    def _check_resolved(self, desired: Desired) -> None:
        for key, value in desired.properties.items():
            for ref in self._refs(value):
                raise ValueError(f"{desired.ref}: property {key!r} still refers to {ref}; resolve() it first")

    def _read_or_confirm_gone(self, desired: Desired, ocid: str) -> Observed | None:
        """The child by OCID; None only when OCI confirms it is gone (a 404 alone is not proof)."""
        try:
            return self._read(ocid)
        except ServiceError as exc:
            if not is_not_found(exc):
                raise
            # the whole compartment, not by name: a resource renamed outside must not pass for deleted
            listed = [r for r in self._list(desired, None) if self._ocid_of(r) == ocid]
            if any(self._phase(self._state_of(r)) is not None for r in listed):
                raise DeletionNotConfirmed(self.kind, f"GET {ocid} answered 404 but the resource is still listed",
                                           opc_request_id=exc.request_id) from exc
            return None

    def _find(self, desired: Desired, pipeline_uid: str) -> list[Any]:
        """Ours among the live resources of ``desired``'s identity, oldest first."""
        found = [r for r in self._list(desired, desired.name)
                 if self._same_identity(desired, r) and self._phase(self._state_of(r)) is not None
                 and tags_of(r).get(PIPELINE_UID_TAG) == pipeline_uid]
        return sorted(found, key=lambda r: (str(getattr(r, "time_created", "") or ""), self._ocid_of(r)))

    # -- the Adapter protocol -----------------------------------------------------------------------------

    def observe(self, desired: Desired, known_ocid: str | None, pipeline_uid: str) -> Observed | None:
        self._check(desired)
        if known_ocid:
            observed = self._read_or_confirm_gone(desired, known_ocid)
            if observed is not None:
                return observed
            log.info("%s %s (%s) is gone", self.kind, known_ocid, desired.ref)
        if desired.adopt_ocid:
            observed = self._read_or_confirm_gone(desired, desired.adopt_ocid)
            if observed is None:
                raise AdoptionTargetMissing(self.kind, f"the spec adopts {desired.adopt_ocid}, which does not exist")
            return observed
        if self._unresolved(desired):
            # A reference that does not resolve names a dependency the reconciler found absent. The
            # name lookup is scoped by those references (a function is listed in its application, a
            # subscription by its topic and endpoint), so it cannot run, and it need not: OCI keeps
            # no function without its application, no stream without its pool, no subscription
            # without its topic. A known OCID was read above; only the name lookup is skipped.
            return None
        ours = self._find(desired, pipeline_uid)
        if len(ours) > 1:
            log.warning("%s %s: %d resources carry this pipeline's tag (%s); using the oldest", self.kind,
                        desired.ref, len(ours), ", ".join(self._ocid_of(r) for r in ours))
        for resource in ours:
            observed = self._read_or_confirm_gone(desired, self._ocid_of(resource))
            if observed is not None:
                return observed
        return None

    def create(self, desired: Desired, pipeline_uid: str, retry_token: str) -> Observed:
        self._check(desired)
        self._check_resolved(desired)
        if desired.adopt_ocid:
            raise ValueError(f"{desired.ref} adopts {desired.adopt_ocid}: an adopted child is observed, never created")
        existing = self._taken(desired, pipeline_uid)
        if existing is not None:
            return existing
        tags = {PIPELINE_UID_TAG: pipeline_uid}
        try:
            response = self._create_call(desired, tags, retry_token)
        except ServiceError as exc:
            if not is_already_exists(exc):
                raise
            existing = self._taken(desired, pipeline_uid)
            if existing is not None:
                return existing
            raise ChildConflict(self.kind, f"OCI refuses to create {desired.name!r} ({exc.code}): {exc.message}",
                                opc_request_id=exc.request_id) from exc
        observed = self._observed(response.data, response.request_id)
        if observed is None:  # answered in a gone state: never seen, but say so rather than return None
            raise ChildBusy(self.kind, f"{desired.name!r} was created in state {self._state_of(response.data)}")
        log.info("created %s %s as %s", self.kind, desired.ref, observed.ocid)
        return observed

    def _taken(self, desired: Desired, pipeline_uid: str) -> Observed | None:
        """Ours when it exists already; raises :class:`ChildConflict` when the identity belongs to another."""
        candidates = [r for r in self._list(desired, desired.name)
                      if self._same_identity(desired, r) and self._blocks_create(r)]
        ours = [r for r in candidates if tags_of(r).get(PIPELINE_UID_TAG) == pipeline_uid]
        if ours:
            ours.sort(key=lambda r: (str(getattr(r, "time_created", "") or ""), self._ocid_of(r)))
            return self._reuse_own(ours[0])
        if candidates:
            others = ", ".join(self._ocid_of(r) for r in candidates)
            raise ChildConflict(
                self.kind, f"{desired.name!r} already exists in compartment {desired.compartment_id} ({others}) "
                f"without this pipeline's {PIPELINE_UID_TAG} tag; it is not adopted by name: name its OCID in the "
                "spec to adopt it, or rename or delete it")
        return None

    def differences(self, desired: Desired, observed: Observed) -> list[Difference]:
        self._check(desired)
        wanted = {COMPARTMENT: desired.compartment_id, **desired.properties}
        out: list[Difference] = []
        for field, value in wanted.items():
            seen = observed.properties.get(field)
            if not self._equal(field, value, seen):
                out.append(Difference(field=field, desired=self._shown(field, value),
                                      observed=self._shown(field, seen), mutable=field in self.mutable))
        return out

    def update(self, desired: Desired, observed: Observed) -> Observed:
        self._check(desired)
        self._check_resolved(desired)
        if observed.phase is not Phase.READY:
            raise ChildBusy(self.kind, f"{observed.ocid} is {observed.lifecycle_state}; update it once it is ready")
        changed = [d for d in self.differences(desired, observed) if d.mutable]
        if not changed:
            return observed
        response = self._update_call(desired, observed, changed)
        fresh = self._read(observed.ocid)  # some updates answer without a body (Functions: 202)
        if fresh is None:
            raise ChildBusy(self.kind, f"{observed.ocid} went away during its update")
        log.info("updated %s %s (%s): %s", self.kind, desired.ref, observed.ocid,
                 ", ".join(d.field for d in changed))
        # the write's request id is the one support asks for
        return dataclasses.replace(fresh, opc_request_id=getattr(response, "request_id", None) or fresh.opc_request_id)

    def delete(self, observed: Observed) -> None:
        try:
            current = self._read(observed.ocid)
        except ServiceError as exc:
            if is_not_found(exc):
                return
            raise
        if current is None or current.phase is Phase.DELETING:
            return
        if current.phase is Phase.PENDING and current.lifecycle_state not in self.deletable_while:
            raise ChildBusy(self.kind, f"{observed.ocid} is {current.lifecycle_state}; delete it once it settles")
        try:
            self._delete_call(observed.ocid)
        except ServiceError as exc:
            if is_not_found(exc):
                return
            raise
        log.info("asked OCI to delete %s %s", self.kind, observed.ocid)
