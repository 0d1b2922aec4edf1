"""The pure planner, table-driven: (desired, observations) → ordered actions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from siem_operator import spec as s
from siem_operator.children import Action, ActionType, ChildKind, Desired, Difference, Observed, Phase, Ref
from siem_operator.desired import desired_children
from siem_operator.naming import PipelineIdentity
from siem_operator.planner import KIND_CLOSURE, Observation, PlanError, creation_order, plan
from tests.operator.test_crd import minimal

C = ChildKind
POOL = "ocid1.instancepool.oc1.iad.aaaaaaaapool"
AUTOSCALING = {"trigger": {"type": "Autoscaling", "autoscaling": {"instancePoolId": POOL}}}


def children(changes: dict[str, Any] | None = None) -> list[Desired]:
    return desired_children(s.parse_spec(minimal()["spec"] | (changes or {})), PipelineIdentity("ns", "p", "uid"))


def R(kind: ChildKind, key: str) -> Ref:
    return Ref(kind, key)


def observed(ref: Ref, phase: Phase = Phase.READY, state: str | None = None) -> Observed:
    states = {Phase.READY: "ACTIVE", Phase.PENDING: "CREATING", Phase.DELETING: "DELETING", Phase.FAILED: "FAILED"}
    return Observed(kind=ref.kind, ocid=f"ocid1.{ref.kind.lower()}.oc1..{ref.key}", phase=phase,
                    lifecycle_state=state or states[phase])


def all_ready(desired: list[Desired], **overrides: Observation) -> dict[Ref, Observation]:
    obs = {d.ref: Observation(observed(d.ref)) for d in desired}
    for text, o in overrides.items():
        kind, key = text.split("/")
        obs[Ref(ChildKind(kind), key)] = o
    return obs


def summary(actions: tuple[Action, ...]) -> list[tuple[str, str]]:
    return [(a.type.value, str(a.ref)) for a in actions]


def of(actions: tuple[Action, ...], ref: str) -> list[Action]:
    return [a for a in actions if str(a.ref) == ref]


PARTITIONS = Difference("partitions", 4, 1, mutable=False)
RECURRENCE = Difference("recurrence_details", "*/10 * * * *", "*/5 * * * *", mutable=True)
IMAGE = Difference("image", "new", "old", mutable=True)

# (name, overrides of an all-ready pipeline, expected actions (type, ref) in order)
TABLE: list[tuple[str, dict[str, Observation], list[tuple[str, str]]]] = [
    ("steady state", {}, []),
    ("schedule changed", {"Schedule/trigger": Observation(observed(R(C.SCHEDULE, "trigger")), (RECURRENCE,))},
     [("Update", "Schedule/trigger")]),
    ("partitions changed", {"Stream/events": Observation(observed(R(C.STREAM, "events")), (PARTITIONS,))},
     [("Blocked", "Stream/events")]),
    ("immutable and mutable together", {"Function/export": Observation(
        observed(R(C.FUNCTION, "export")), (Difference("application_id", "a", "b", mutable=False), IMAGE))},
     [("Blocked", "Function/export"), ("Update", "Function/export")]),
    ("topic deleted behind our back", {"Topic/fetch": Observation(None)},
     [("Create", "Topic/fetch"), ("Wait", "Function/fanout"), ("Wait", "Function/fetch"),
      ("Wait", "Subscription/fetch")]),
    ("stream still creating", {"Stream/work": Observation(observed(R(C.STREAM, "work"), Phase.PENDING))},
     [("Wait", "Stream/work"), ("Wait", "Function/fanout"), ("Wait", "Function/fetch")]),
    ("function failed", {"Function/fetch": Observation(observed(R(C.FUNCTION, "fetch"), Phase.FAILED))},
     [("Blocked", "Function/fetch"), ("Wait", "Subscription/fetch")]),
    ("function being deleted outside", {"Function/export": Observation(observed(R(C.FUNCTION, "export"),
                                                                                Phase.DELETING))},
     [("Wait", "Function/export"), ("Wait", "Subscription/export")]),
]


@pytest.mark.parametrize(("name", "overrides", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_reconcile_table(name: str, overrides: dict[str, Observation], expected: list[tuple[str, str]]) -> None:
    desired = children()
    result = plan(desired, all_ready(desired, **overrides))
    assert summary(result.actions) == expected
    assert result.converged == (expected == [])


def test_nothing_exists_creates_the_roots_and_waits_for_the_rest() -> None:
    desired = children()
    result = plan(desired, {})
    assert summary(result.executable) == [("Create", "StreamPool/pool"), ("Create", "Application/app"),
                                          ("Create", "Topic/export"), ("Create", "Topic/fetch")]
    waits = {str(a.ref): a.reason for a in result.waiting}
    assert set(waits) == {str(d.ref) for d in desired} - {"StreamPool/pool", "Application/app", "Topic/export",
                                                          "Topic/fetch"}
    assert "StreamPool/pool (absent)" in waits["Stream/events"]


def test_messages_say_what_to_do() -> None:
    desired = children()
    blocked = plan(desired, all_ready(desired, **{"Stream/events": Observation(
        observed(R(C.STREAM, "events")), (PARTITIONS,))})).blocked[0]
    assert "partitions is 1 in OCI but the spec asks for 4" in blocked.reason
    assert "set the spec back" in blocked.reason
    assert blocked.differences == (PARTITIONS,)
    failed = plan(desired, all_ready(desired, **{"Function/fetch": Observation(
        observed(R(C.FUNCTION, "fetch"), Phase.FAILED))})).blocked[0]
    assert "delete it in OCI" in failed.reason
    assert "re-creates it" in failed.reason
    update = plan(desired, all_ready(desired, **{"Schedule/trigger": Observation(
        observed(R(C.SCHEDULE, "trigger")), (RECURRENCE,))})).executable[0]
    assert update.differences == (RECURRENCE,)
    assert "recurrence_details" in update.reason


def simulate(desired: list[Desired], obs: dict[Ref, Observation], **kwargs: Any) -> list[list[tuple[str, str]]]:
    """Run plan → act until nothing is executable; acting makes creates Ready and deletes gone at once."""
    rounds: list[list[tuple[str, str]]] = []
    for _ in range(20):
        result = plan(desired, obs, **kwargs)
        if not result.executable:
            return rounds
        rounds.append(summary(result.executable))
        for action in result.executable:
            if action.type is ActionType.CREATE:
                assert action.ref not in obs or obs[action.ref].observed is None, f"{action.ref} created twice"
                deps = next(d for d in desired if d.ref == action.ref).depends_on
                assert all(obs[d].observed is not None and obs[d].observed.phase is Phase.READY  # type: ignore[union-attr]
                           for d in deps), f"{action.ref} created before its dependencies"
                obs[action.ref] = Observation(observed(action.ref))
            elif action.type is ActionType.DELETE:
                obs[action.ref] = Observation(None)
    raise AssertionError("no convergence in 20 rounds")


@pytest.mark.parametrize("changes", [{}, AUTOSCALING], ids=["resource-scheduler", "autoscaling"])
def test_creation_converges_in_dependency_layers(changes: dict[str, Any]) -> None:
    desired = children(changes)
    obs: dict[Ref, Observation] = {}
    rounds = simulate(desired, obs)
    created = [ref for r in rounds for _, ref in r]
    assert sorted(created) == sorted(str(d.ref) for d in desired)
    assert rounds[-1] == ([("Create", "Schedule/trigger")] if not changes
                          else [("Create", "AutoscalingConfiguration/trigger")])
    assert plan(desired, obs).converged


def test_deletion_goes_in_reverse_layers_and_waits_for_confirmation() -> None:
    desired = children()
    obs = all_ready(desired)
    result = plan(desired, obs, deleting=True)
    assert summary(result.executable) == [("Delete", "Schedule/trigger")]
    assert not result.deleted
    waits = {str(a.ref): a.reason for a in result.waiting}
    assert "deleted once" in waits["Subscription/fetch"]
    assert "Schedule/trigger" in waits["Subscription/fetch"]
    # OCI says DELETING: the next layer still waits, until the schedule is confirmed gone
    obs[R(C.SCHEDULE, "trigger")] = Observation(observed(R(C.SCHEDULE, "trigger"), Phase.DELETING))
    result = plan(desired, obs, deleting=True)
    assert result.executable == ()
    assert "waiting for OCI to confirm" in of(result.actions, "Schedule/trigger")[0].reason
    obs[R(C.SCHEDULE, "trigger")] = Observation(None)
    rounds = simulate(desired, obs, deleting=True)
    assert rounds == [
        [("Delete", "Subscription/export"), ("Delete", "Subscription/fetch")],
        [("Delete", "Function/export"), ("Delete", "Function/fanout"), ("Delete", "Function/fetch")],
        [("Delete", "Topic/export"), ("Delete", "Topic/fetch"), ("Delete", "Application/app"),
         ("Delete", "Stream/dead-letter"), ("Delete", "Stream/events"), ("Delete", "Stream/state"),
         ("Delete", "Stream/work")],
        [("Delete", "StreamPool/pool")],
    ]
    final = plan(desired, obs, deleting=True)
    assert final.deleted
    assert final.actions == ()


def test_autoscaling_deletion_starts_with_the_trigger() -> None:
    desired = children(AUTOSCALING)
    result = plan(desired, all_ready(desired), deleting=True)
    assert summary(result.executable) == [("Delete", "AutoscalingConfiguration/trigger")]


def test_deleting_a_child_that_is_still_creating_waits() -> None:
    desired = children()
    obs = {R(C.STREAM_POOL, "pool"): Observation(observed(R(C.STREAM_POOL, "pool"), Phase.PENDING))}
    result = plan(desired, obs, deleting=True)
    assert summary(result.actions) == [("Wait", "StreamPool/pool")]
    assert "once it settles" in result.actions[0].reason


def test_failed_children_are_deleted_on_deletion() -> None:
    desired = children()
    obs = {R(C.FUNCTION, "fetch"): Observation(observed(R(C.FUNCTION, "fetch"), Phase.FAILED))}
    assert summary(plan(desired, obs, deleting=True).actions) == [("Delete", "Function/fetch")]


def test_retain_deletes_nothing_and_says_what_is_left() -> None:
    desired = children()
    obs = all_ready(desired)
    result = plan(desired, obs, deleting=True, deletion_policy=s.DeletionPolicy.RETAIN)
    assert result.actions == ()
    assert result.deleted
    assert set(result.retained) == set(obs)


def test_nothing_left_means_deleted() -> None:
    result = plan(children(), {}, deleting=True)
    assert result.deleted
    assert result.actions == ()


def test_orphans_are_deleted_once_the_pipeline_converged() -> None:
    # the trigger switched from Resource Scheduler to Autoscaling: the old schedule is an orphan
    desired = children(AUTOSCALING)
    schedule = R(C.SCHEDULE, "trigger")
    obs = {schedule: Observation(observed(schedule))}
    result = plan(desired, obs)
    assert of(result.actions, "Schedule/trigger")[0].type is ActionType.WAIT
    assert "no longer part of the spec" in of(result.actions, "Schedule/trigger")[0].reason
    obs = all_ready(desired) | obs
    assert summary(plan(desired, obs).actions) == [("Delete", "Schedule/trigger")]
    retained = plan(desired, obs, deletion_policy=s.DeletionPolicy.RETAIN)
    assert retained.actions == ()
    assert retained.retained == (schedule,)


def test_orphans_are_deleted_in_dependency_order() -> None:
    desired = children()  # the Autoscaling trigger's rule, topic and subscription are orphans now
    orphans = [R(C.AUTOSCALING_CONFIGURATION, "trigger"), R(C.EVENT_RULE, "trigger"), R(C.SUBSCRIPTION, "trigger"),
               R(C.TOPIC, "trigger")]
    obs = all_ready(desired) | {r: Observation(observed(r)) for r in orphans}
    assert simulate(desired, obs) == [
        [("Delete", "AutoscalingConfiguration/trigger")],
        [("Delete", "EventRule/trigger"), ("Delete", "Subscription/trigger")],
        [("Delete", "Topic/trigger")],
    ]


def test_planning_is_pure_and_deterministic() -> None:
    desired = children()
    obs = all_ready(desired, **{"Topic/fetch": Observation(None)})
    before = dict(obs)
    assert plan(desired, obs) == plan(list(reversed(desired)), obs)
    assert obs == before


def test_inconsistent_desired_children_are_refused() -> None:
    a = Desired(C.STREAM, "a", "a", "r", "c", depends_on=(R(C.STREAM_POOL, "missing"),))
    with pytest.raises(PlanError, match="not a desired child"):
        creation_order([a])
    x = Desired(C.TOPIC, "x", "x", "r", "c", depends_on=(R(C.TOPIC, "y"),))
    y = Desired(C.TOPIC, "y", "y", "r", "c", depends_on=(R(C.TOPIC, "x"),))
    with pytest.raises(PlanError, match="cycle"):
        creation_order([x, y])


@pytest.mark.parametrize("changes", [{}, AUTOSCALING], ids=["resource-scheduler", "autoscaling"])
def test_kind_dependencies_cover_every_instance_dependency(changes: Mapping[str, Any]) -> None:
    for child in children(dict(changes)):
        for dep in child.depends_on:
            assert dep.kind in KIND_CLOSURE[child.kind], f"{child.ref} -> {dep}"


def test_plan_counts_what_is_not_ready_for_the_ready_condition() -> None:
    desired = children()
    obs = all_ready(desired, **{"Stream/work": Observation(observed(R(C.STREAM, "work"), Phase.PENDING)),
                                "Topic/fetch": Observation(None)})
    result = plan(desired, obs)
    assert result.desired_count == len(desired)
    assert set(result.unready) == {R(C.STREAM, "work"), R(C.TOPIC, "fetch")}
    assert plan(desired, all_ready(desired)).unready == ()


def test_the_pure_modules_do_not_import_the_oci_sdk() -> None:
    import subprocess
    import sys

    code = ("import sys; import siem_operator.planner, siem_operator.conditions, siem_operator.desired, "
            "siem_operator.naming, siem_operator.spec, siem_operator.crd; "
            "print(sorted(m for m in sys.modules if m == 'oci' or m.startswith(('oci.', 'kopf', 'kubernetes'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
