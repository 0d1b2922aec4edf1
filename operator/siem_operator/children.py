"""The vocabulary shared by the planner and the per-kind OCI adapters.

A ``SiemPipeline`` owns a set of child OCI resources. The planner turns the spec into one
:class:`Desired` per child, the adapters turn OCI into one :class:`Observed` per child, and the planner
compares the two and returns ordered :class:`Action` s. This module holds only plain data and the
:class:`Adapter` protocol: no SDK, no Kubernetes, so both sides can be tested without I/O.

References between children (a stream lives in a stream pool, a subscription points at a function)
are written as :class:`Ref` values inside :attr:`Desired.properties` and replaced by OCIDs
(:func:`resolve`) just before an adapter acts, once the referenced child exists.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Protocol

#: freeform tag on every OCI resource the operator creates (``../shared/DESIGN.md``)
PIPELINE_UID_TAG = "siem.ocisiem.io/pipeline-uid"


class ChildKind(enum.StrEnum):
    """Every OCI kind a pipeline owns, in the order they are created (deleted in reverse)."""

    VAULT_SECRET = "VaultSecret"  # noqa: S105 -- a kind name, not a password
    STREAM_POOL = "StreamPool"
    STREAM = "Stream"
    APPLICATION = "Application"
    FUNCTION = "Function"
    TOPIC = "Topic"
    SUBSCRIPTION = "Subscription"
    EVENT_RULE = "EventRule"
    SCHEDULE = "Schedule"
    AUTOSCALING_CONFIGURATION = "AutoscalingConfiguration"


@dataclasses.dataclass(frozen=True, order=True)
class Ref:
    """A reference to another child of the same pipeline, by kind and logical key."""

    kind: ChildKind
    key: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"


@dataclasses.dataclass(frozen=True, order=True)
class Attr:
    """An attribute of another child, read from its :attr:`Observed.properties` (e.g. a stream's
    ``messages_endpoint``, which the functions need besides its OCID). The child must be a dependency."""

    ref: Ref
    name: str

    def __str__(self) -> str:
        return f"{self.ref}.{self.name}"


@dataclasses.dataclass(frozen=True)
class Desired:
    """One child as the spec wants it.

    ``key`` is the child's stable logical name inside the pipeline (``"events"`` for the events
    stream, ``"fetch"`` for the fetch function …); ``name`` the deterministic OCI display name the
    adapter looks it up by, together with the :data:`PIPELINE_UID_TAG` freeform tag.
    ``properties`` holds the kind's own fields in the SDK's snake_case names; a value may be a
    :class:`Ref`. ``adopt_ocid`` is set only when the spec names an existing resource to adopt.
    """

    kind: ChildKind
    key: str
    name: str
    region: str
    compartment_id: str
    properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    depends_on: tuple[Ref, ...] = ()
    adopt_ocid: str | None = None

    @property
    def ref(self) -> Ref:
        return Ref(self.kind, self.key)


class Phase(enum.StrEnum):
    """An observed child's lifecycle, folded from the kind's own OCI lifecycle states."""

    PENDING = "Pending"  # CREATING, UPDATING: wait, do not act
    READY = "Ready"  # ACTIVE and friends
    DELETING = "Deleting"  # DELETING: wait for it to finish
    FAILED = "Failed"  # FAILED: needs a person or a re-create


@dataclasses.dataclass(frozen=True)
class Observed:
    """One child as OCI has it. ``properties`` uses the same names as :attr:`Desired.properties`."""

    kind: ChildKind
    ocid: str
    phase: Phase
    lifecycle_state: str
    properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    freeform_tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    opc_request_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Difference:
    """A field whose observed value differs from the desired one; ``mutable`` says if OCI can update it."""

    field: str
    desired: Any
    observed: Any
    mutable: bool


class ActionType(enum.StrEnum):
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"
    WAIT = "Wait"  # a child is PENDING/DELETING, or waits for a dependency
    BLOCKED = "Blocked"  # an immutable field changed; the spec must change back, nothing is replaced


@dataclasses.dataclass(frozen=True)
class Action:
    type: ActionType
    ref: Ref
    reason: str
    differences: tuple[Difference, ...] = ()


class Adapter(Protocol):
    """Observe / create / update / delete one OCI kind. Every method is idempotent and returns at once:
    none waits for a lifecycle state to settle (the caller re-observes later)."""

    kind: ChildKind

    def observe(self, desired: Desired, known_ocid: str | None, pipeline_uid: str) -> Observed | None:
        """The child, found by ``known_ocid`` (from status), else ``desired.adopt_ocid``, else by
        ``desired.name`` *and* the pipeline-uid tag. ``None`` when it does not exist (a DELETED
        resource does not exist; a 404 on a known OCID is confirmed by a list before saying so)."""
        ...

    def create(self, desired: Desired, pipeline_uid: str, retry_token: str) -> Observed:
        """Create it (properties already resolved), tagged with the pipeline uid, sending
        ``retry_token`` as ``opc-retry-token`` where the operation accepts one."""
        ...

    def differences(self, desired: Desired, observed: Observed) -> list[Difference]:
        """What differs between a resolved ``desired`` and ``observed``; empty when up to date."""
        ...

    def update(self, desired: Desired, observed: Observed) -> Observed:
        """Bring the mutable fields of ``observed`` to ``desired``."""
        ...

    def delete(self, observed: Observed) -> None:
        """Ask OCI to delete it; a child already gone is not an error."""
        ...


def resolve(desired: Desired, ocids: Mapping[Ref, str],
            attributes: Mapping[Ref, Mapping[str, Any]] | None = None) -> Desired:
    """``desired`` with every :class:`Ref` in its properties (also inside lists and dicts) replaced by
    the OCID in ``ocids``, and every :class:`Attr` by the value in ``attributes`` (the observed children's
    properties, by reference). Raises :class:`KeyError` naming the first missing reference or attribute."""

    def value(v: Any) -> Any:
        if isinstance(v, Ref):
            if v not in ocids:
                raise KeyError(str(v))
            return ocids[v]
        if isinstance(v, Attr):
            found = (attributes or {}).get(v.ref, {}).get(v.name)
            if found is None:
                raise KeyError(str(v))
            return found
        if isinstance(v, list | tuple):
            return type(v)(value(x) for x in v)
        if isinstance(v, Mapping):
            return {k: value(x) for k, x in v.items()}
        return v

    return dataclasses.replace(desired, properties={k: value(v) for k, v in desired.properties.items()})
