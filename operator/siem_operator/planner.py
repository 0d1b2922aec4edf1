"""The pure planner: (desired children, observations) → ordered actions. No I/O, no clock.

The reconciler gathers (observes every child through its adapter and asks the adapter for the
:class:`~siem_operator.children.Difference` s of the resolved desired child), calls :func:`plan`, acts on
the CREATE / UPDATE / DELETE actions in order, and turns WAIT and BLOCKED into conditions and a timed
retry. Calling it again after any crash is safe: it only compares what is with what should be.

Rules, per desired child, in dependency order:

- absent → CREATE once every dependency is Ready, else WAIT naming the dependency;
- Pending (creating, updating) or Deleting → WAIT; Failed → BLOCKED (a person deletes it in OCI, then
  the operator re-creates it: nothing is replaced silently);
- Ready, with a dependency not Ready → WAIT (its differences cannot be trusted yet);
- Ready with differences: immutable ones → BLOCKED with what to do; mutable ones → UPDATE (both can
  happen at once: what can be brought in line is).

Children observed but no longer desired (the trigger type changed, a token moved to an existing Vault
secret) are *orphans*: deleted once the desired children have converged, so nothing still uses them.

Deletion (the SiemPipeline is being deleted, or orphans): a child is deleted only when every child that
depends on it is confirmed gone (absent: a 404 alone is not proof, the adapters confirm), following the
instance dependencies and, for children whose dependencies are unknown, :data:`KIND_DEPENDENCIES`.
``Retain`` deletes nothing and lists what is left in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from siem_operator.children import Action, ActionType, ChildKind, Desired, Difference, Observed, Phase, Ref
from siem_operator.spec import DeletionPolicy

#: Which kinds a kind may depend on (an acyclic superset of every instance dependency ``desired`` builds).
KIND_DEPENDENCIES: Final[Mapping[ChildKind, frozenset[ChildKind]]] = {
    ChildKind.VAULT_SECRET: frozenset(),
    ChildKind.STREAM_POOL: frozenset(),
    ChildKind.STREAM: frozenset({ChildKind.STREAM_POOL}),
    ChildKind.APPLICATION: frozenset(),
    ChildKind.TOPIC: frozenset(),
    ChildKind.FUNCTION: frozenset({ChildKind.APPLICATION, ChildKind.STREAM, ChildKind.TOPIC, ChildKind.VAULT_SECRET}),
    ChildKind.SUBSCRIPTION: frozenset({ChildKind.TOPIC, ChildKind.FUNCTION}),
    ChildKind.EVENT_RULE: frozenset({ChildKind.TOPIC}),
    ChildKind.SCHEDULE: frozenset({ChildKind.FUNCTION, ChildKind.SUBSCRIPTION}),
    ChildKind.AUTOSCALING_CONFIGURATION: frozenset({ChildKind.EVENT_RULE, ChildKind.SUBSCRIPTION, ChildKind.FUNCTION}),
}
_RANK: Final = {kind: i for i, kind in enumerate(ChildKind)}


def _kind_closure() -> dict[ChildKind, frozenset[ChildKind]]:
    closure: dict[ChildKind, frozenset[ChildKind]] = {}

    def visit(kind: ChildKind, path: tuple[ChildKind, ...]) -> frozenset[ChildKind]:
        if kind in path:
            raise ValueError(f"KIND_DEPENDENCIES has a cycle: {' -> '.join((*path, kind))}")
        if kind not in closure:
            out: set[ChildKind] = set()
            for dep in KIND_DEPENDENCIES[kind]:
                out |= {dep} | visit(dep, (*path, kind))
            closure[kind] = frozenset(out)
        return closure[kind]

    for kind in ChildKind:
        visit(kind, ())
    return closure


#: every kind a kind depends on, transitively
KIND_CLOSURE: Final = _kind_closure()


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the gather step learned about one child: the resource (None: confirmed absent) and, when it
    exists and its desired form could be resolved, the adapter's differences (empty: up to date)."""

    observed: Observed | None
    differences: tuple[Difference, ...] = ()


@dataclasses.dataclass(frozen=True)
class Plan:
    """The ordered actions, and what they add up to."""

    actions: tuple[Action, ...]
    #: children left in place by ``deletionPolicy: Retain``
    retained: tuple[Ref, ...] = ()
    #: the pipeline is deleting and nothing of it is left to delete (the finalizer may go)
    deleted: bool = False
    #: desired children that do not exist or are not Ready (for the Ready condition)
    unready: tuple[Ref, ...] = ()
    #: how many children the spec wants
    desired_count: int = 0

    def of_type(self, *types: ActionType) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.type in types)

    @property
    def executable(self) -> tuple[Action, ...]:
        """CREATE, UPDATE and DELETE actions, in the order to run them."""
        return self.of_type(ActionType.CREATE, ActionType.UPDATE, ActionType.DELETE)

    @property
    def blocked(self) -> tuple[Action, ...]:
        return self.of_type(ActionType.BLOCKED)

    @property
    def waiting(self) -> tuple[Action, ...]:
        return self.of_type(ActionType.WAIT)

    @property
    def converged(self) -> bool:
        """Nothing left to do and nothing to wait for (BLOCKED counts: a person must act)."""
        return not self.actions


class PlanError(ValueError):
    """The desired children are inconsistent (a dependency that is not a child, a cycle): a bug."""


def creation_order(desired: Sequence[Desired]) -> list[Desired]:
    """``desired`` topologically sorted by ``depends_on``; ties by kind, then key (deterministic)."""
    by_ref = {d.ref: d for d in desired}
    if len(by_ref) != len(desired):
        raise PlanError("two desired children share a reference")
    for d in desired:
        for dep in d.depends_on:
            if dep not in by_ref:
                raise PlanError(f"{d.ref} depends on {dep}, which is not a desired child")
    done: set[Ref] = set()
    out: list[Desired] = []
    remaining = sorted(desired, key=lambda d: (_RANK[d.kind], d.key))
    while remaining:
        ready = [d for d in remaining if set(d.depends_on) <= done]
        if not ready:
            raise PlanError(f"dependency cycle among {', '.join(str(d.ref) for d in remaining)}")
        first = ready[0]
        out.append(first)
        done.add(first.ref)
        remaining.remove(first)
    return out


def _state(observation: Observation | None) -> str:
    if observation is None or observation.observed is None:
        return "absent"
    return f"{observation.observed.phase.value}, {observation.observed.lifecycle_state}"


def _ready(observation: Observation | None) -> bool:
    return observation is not None and observation.observed is not None and observation.observed.phase is Phase.READY


def _immutable_message(ref: Ref, observed: Observed, differences: Sequence[Difference]) -> str:
    fields = "; ".join(f"{d.field} is {d.observed!r} in OCI but the spec asks for {d.desired!r}" for d in differences)
    return (f"{ref} ({observed.ocid}): {fields}. OCI cannot change this in place and the operator replaces "
            "nothing silently: set the spec back to the value in OCI, or delete the resource in OCI (its data is "
            "lost) to have it re-created, or create a new SiemPipeline.")


def _plan_child(child: Desired, observations: Mapping[Ref, Observation]) -> list[Action]:
    observation = observations.get(child.ref)
    observed = observation.observed if observation is not None else None
    not_ready = [dep for dep in child.depends_on if not _ready(observations.get(dep))]
    waits_for = ", ".join(f"{dep} ({_state(observations.get(dep))})" for dep in not_ready)
    if observed is None:
        if not_ready:
            return [Action(ActionType.WAIT, child.ref, f"waiting to be created until {waits_for} is ready")]
        return [Action(ActionType.CREATE, child.ref, f"{child.ref} does not exist: creating {child.name}")]
    if observed.phase is Phase.PENDING:
        return [Action(ActionType.WAIT, child.ref,
                       f"{child.ref} is {observed.lifecycle_state}: waiting for it to settle")]
    if observed.phase is Phase.DELETING:
        return [Action(ActionType.WAIT, child.ref,
                       f"{child.ref} is {observed.lifecycle_state} in OCI: it is re-created once it is gone")]
    if observed.phase is Phase.FAILED:
        return [Action(ActionType.BLOCKED, child.ref,
                       f"{child.ref} ({observed.ocid}) is {observed.lifecycle_state} in OCI: delete it in OCI "
                       "(see its work requests for why it failed) and the operator re-creates it")]
    if not_ready:
        return [Action(ActionType.WAIT, child.ref, f"waiting for {waits_for} before checking {child.ref} for changes")]
    assert observation is not None
    immutable = tuple(d for d in observation.differences if not d.mutable)
    mutable = tuple(d for d in observation.differences if d.mutable)
    actions = []
    if immutable:
        actions.append(Action(ActionType.BLOCKED, child.ref, _immutable_message(child.ref, observed, immutable),
                              immutable))
    if mutable:
        fields = ", ".join(d.field for d in mutable)
        actions.append(Action(ActionType.UPDATE, child.ref, f"{child.ref} differs in {fields}: updating", mutable))
    return actions


def _deletions(present: Mapping[Ref, Observed], depends_on: Mapping[Ref, Iterable[Ref]], why: str) -> list[Action]:
    """Delete every child in ``present`` whose dependents are gone; WAIT for the others."""

    def needs(dependent: Ref, dependency: Ref) -> bool:
        return dependency in set(depends_on.get(dependent, ())) or dependency.kind in KIND_CLOSURE[dependent.kind]

    actions: list[Action] = []
    order = sorted(present, key=lambda r: (-_RANK[r.kind], r.key))
    for ref in order:
        observed = present[ref]
        dependents = [other for other in order if other != ref and needs(other, ref)]
        if dependents:
            names = ", ".join(str(d) for d in dependents)
            actions.append(Action(ActionType.WAIT, ref, f"{why}: {ref} is deleted once {names} is gone"))
        elif observed.phase is Phase.DELETING:
            actions.append(Action(ActionType.WAIT, ref, f"{why}: {ref} is {observed.lifecycle_state}, waiting for "
                                                        "OCI to confirm it is gone"))
        elif observed.phase is Phase.PENDING:
            actions.append(Action(ActionType.WAIT, ref, f"{why}: {ref} is {observed.lifecycle_state}, deleted "
                                                        "once it settles"))
        else:
            actions.append(Action(ActionType.DELETE, ref, f"{why}: deleting {ref} ({observed.ocid})"))
    # deletions first (in dependency order), then the waits
    return [a for a in actions if a.type is ActionType.DELETE] + [a for a in actions if a.type is not ActionType.DELETE]


def plan(desired: Sequence[Desired], observations: Mapping[Ref, Observation], *, deleting: bool = False,
         deletion_policy: DeletionPolicy = DeletionPolicy.DELETE) -> Plan:
    """The actions that bring OCI to ``desired`` (or, when ``deleting``, remove the pipeline's children).

    ``observations`` holds every child the gather step looked at: the desired ones and any other the
    status knows of (orphans). A desired child missing from it counts as absent.
    """
    ordered = creation_order(desired)
    depends_on = {d.ref: d.depends_on for d in ordered}
    present = {ref: o.observed for ref, o in observations.items() if o.observed is not None}
    if deleting:
        if deletion_policy is DeletionPolicy.RETAIN:
            return Plan(actions=(), retained=tuple(sorted(present)), deleted=True)
        deletions = _deletions(present, depends_on, "the SiemPipeline is being deleted")
        return Plan(actions=tuple(deletions), deleted=not present)

    actions: list[Action] = []
    for child in ordered:
        actions.extend(_plan_child(child, observations))
    unready = tuple(d.ref for d in ordered if not _ready(observations.get(d.ref)))

    def result(retained: tuple[Ref, ...] = ()) -> Plan:
        return Plan(actions=tuple(actions), retained=retained, unready=unready, desired_count=len(ordered))

    orphans = {ref: observed for ref, observed in present.items() if ref not in depends_on}
    if not orphans:
        return result()
    if deletion_policy is DeletionPolicy.RETAIN:
        return result(retained=tuple(sorted(orphans)))
    if any(a.type is not ActionType.BLOCKED for a in actions):
        actions.extend(Action(ActionType.WAIT, ref, f"{ref} is no longer part of the spec: it is deleted once the "
                                                    "pipeline has converged") for ref in sorted(orphans))
    else:
        actions.extend(_deletions(orphans, {}, "no longer part of the spec"))
    return result()
