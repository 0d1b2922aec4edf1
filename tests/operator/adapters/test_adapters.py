"""What every adapter does, kind by kind, against ocisim through the real SDK and the project's client factory."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable

import oci
import pytest

from ocisim.controlclient import OcisimControl
from siem_operator.adapters import (
    ADAPTERS,
    AdoptionTargetMissing,
    ChildConflict,
    DeletionNotConfirmed,
    build_adapters,
)
from siem_operator.children import PIPELINE_UID_TAG, Adapter, ChildKind, Desired, Observed, Phase
from tests.operator.adapters.conftest import CASES, REGION, Case, Env, by_kind

#: the GET each kind's observe makes, as (ocisim service, operation) for fault injection
GETS: dict[ChildKind, tuple[str, str]] = {
    ChildKind.STREAM_POOL: ("streaming", "GetStreamPool"),
    ChildKind.STREAM: ("streaming", "GetStream"),
    ChildKind.TOPIC: ("notification", "GetTopic"),
    ChildKind.SUBSCRIPTION: ("notification", "GetSubscription"),
    ChildKind.EVENT_RULE: ("events", "GetRule"),
    ChildKind.SCHEDULE: ("resource-scheduler", "GetSchedule"),
    ChildKind.AUTOSCALING_CONFIGURATION: ("autoscaling", "GetAutoScalingConfiguration"),
    ChildKind.APPLICATION: ("functions", "GetApplication"),
    ChildKind.FUNCTION: ("functions", "GetFunction"),
    ChildKind.VAULT_SECRET: ("vaults", "GetSecret"),
}
#: the create operation of each kind, as audited by ocisim
CREATES: dict[ChildKind, str] = {
    ChildKind.STREAM_POOL: "CreateStreamPool", ChildKind.STREAM: "CreateStream", ChildKind.TOPIC: "CreateTopic",
    ChildKind.SUBSCRIPTION: "CreateSubscription", ChildKind.EVENT_RULE: "CreateRule",
    ChildKind.SCHEDULE: "CreateSchedule", ChildKind.AUTOSCALING_CONFIGURATION: "CreateAutoScalingConfiguration",
    ChildKind.APPLICATION: "CreateApplication", ChildKind.FUNCTION: "CreateFunction",
    ChildKind.VAULT_SECRET: "CreateSecret",
}


def token() -> str:
    return uuid.uuid4().hex


def create(env: Env, case: Case, desired: Desired | None = None, retry_token: str | None = None) -> Observed:
    return env.adapter(case.kind).create(desired or case.desired(env), env.uid, retry_token or token())


def test_every_kind_has_an_adapter_that_fits_the_protocol(env: Env) -> None:
    adapters: dict[ChildKind, Adapter] = build_adapters(env.factory, REGION)
    assert set(adapters) == set(ChildKind)
    for kind, adapter in adapters.items():
        assert adapter.kind is kind
        assert type(adapter) is ADAPTERS[kind]
        overlap = ADAPTERS[kind].mutable & ADAPTERS[kind].immutable
        assert not overlap, f"{kind}: {overlap} both mutable and immutable"


@by_kind
def test_create_observe_converge_and_update_in_place(env: Env, case: Case, slow: Callable[[float], None]) -> None:
    adapter = env.adapter(case.kind)
    desired = case.desired(env)
    created = adapter.create(desired, env.uid, token())
    assert created.kind is case.kind
    assert created.freeform_tags[PIPELINE_UID_TAG] == env.uid
    assert created.opc_request_id
    assert created.phase is (Phase.PENDING if case.pending_first else Phase.READY)

    seen = adapter.observe(desired, created.ocid, env.uid)
    assert seen is not None
    assert seen.ocid == created.ocid
    assert seen.phase is (Phase.PENDING if case.pending_first else Phase.READY)
    assert seen.opc_request_id
    assert seen.opc_request_id != created.opc_request_id
    slow(31)
    seen = adapter.observe(desired, created.ocid, env.uid)
    assert seen is not None
    assert seen.phase is Phase.READY
    assert adapter.differences(desired, seen) == []

    if case.mutable_change is None:
        assert not ADAPTERS[case.kind].mutable, "a kind with mutable fields needs a mutable change in its case"
        return
    changed = case.desired(env, **case.mutable_change(env))
    differences = adapter.differences(changed, seen)
    assert differences
    assert {d.field for d in differences} == set(case.mutable_change(env))
    assert all(d.mutable for d in differences)
    updated = adapter.update(changed, seen)
    assert updated.ocid == created.ocid
    assert updated.opc_request_id
    slow(31)
    converged = adapter.observe(changed, created.ocid, env.uid)
    assert converged is not None
    assert converged.phase is Phase.READY
    assert adapter.differences(changed, converged) == []
    assert adapter.update(changed, converged) == converged  # nothing to do: no call, same observation
    assert case.count(env, desired) == 1


@by_kind
def test_an_immutable_change_is_reported_not_applied(env: Env, case: Case) -> None:
    adapter = env.adapter(case.kind)
    observed = create(env, case)
    if case.immutable_change is None:
        changed = dataclasses.replace(case.desired(env), compartment_id=env.other_compartment_id)
        field = "compartment_id"
    else:
        changed = case.desired(env, **case.immutable_change(env))
        [field] = case.immutable_change(env)
    differences = adapter.differences(changed, observed)
    assert [(d.field, d.mutable) for d in differences] == [(field, False)]
    if case.kind is not ChildKind.VAULT_SECRET:
        assert differences[0].desired != differences[0].observed
    assert adapter.update(changed, observed) == observed  # nothing it could do in place
    after = adapter.observe(case.desired(env), observed.ocid, env.uid)
    assert after is not None
    assert after.properties[field] == observed.properties[field]


@by_kind
def test_a_lost_ocid_is_found_by_name_and_tag_and_a_repeated_create_does_not_duplicate(env: Env, case: Case) -> None:
    adapter = env.adapter(case.kind)
    desired = case.desired(env)
    retry_token = token()
    first = create(env, case, desired, retry_token)
    # the operator crashed before writing status: only the name, the tag and the retry token are left
    found = adapter.observe(desired, None, env.uid)
    assert found is not None
    assert found.ocid == first.ocid
    again = create(env, case, desired, retry_token)
    assert again.ocid == first.ocid
    assert case.count(env, desired) == 1
    # another pipeline's uid does not find it
    assert adapter.observe(desired, None, str(uuid.uuid4())) is None


@by_kind
def test_the_create_call_carries_the_retry_token_where_the_sdk_takes_one(env: Env, case: Case) -> None:
    adapter = env.adapter(case.kind)
    desired = case.desired(env)
    retry_token = token()
    first = adapter._create_call(desired, {PIPELINE_UID_TAG: env.uid}, retry_token)
    if adapter.create_takes_retry_token:
        # the same call again, as the SDK retries after a lost answer: OCI replays the first answer
        second = adapter._create_call(desired, {PIPELINE_UID_TAG: env.uid}, retry_token)
        assert adapter._ocid_of(second.data) == adapter._ocid_of(first.data)
    else:
        # oci 2.189 sends no token for this create: OCI's unique names refuse the duplicate, and create()
        # resolves the refusal to the one that exists
        with pytest.raises(oci.exceptions.ServiceError) as refused:
            adapter._create_call(desired, {PIPELINE_UID_TAG: env.uid}, retry_token)
        assert refused.value.status == 409
        assert create(env, case, desired, retry_token).ocid == adapter._ocid_of(first.data)
    assert case.count(env, desired) == 1
    sent = _audited_retry_tokens(env, CREATES[case.kind])  # (the fixture's own creates carry SDK-made tokens)
    assert (retry_token in sent) is adapter.create_takes_retry_token


def _audited_retry_tokens(env: Env, operation: str) -> list[str]:
    """The ``opc-retry-token`` headers of the audited ``operation`` calls in the pipeline's compartment."""
    now = dt.datetime.fromisoformat(env.control.clock()["now"].replace("Z", "+00:00"))
    start = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    audit = env.factory.audit(REGION)
    events = oci.pagination.list_call_get_all_results(audit.list_events, env.compartment_id, start,
                                                       start + dt.timedelta(minutes=10)).data
    calls = [e for e in events if e.data.event_name == operation]
    assert calls, f"no audited {operation}"
    return [token for e in calls for token in (e.data.request.headers or {}).get("opc-retry-token", [])]


@by_kind
def test_a_same_named_resource_without_our_tag_is_not_adopted(env: Env, case: Case) -> None:
    adapter = env.adapter(case.kind)
    desired = case.desired(env)
    foreign = adapter._create_call(desired, {}, token())  # someone else's, made by hand: no tag
    assert adapter.observe(desired, None, env.uid) is None
    with pytest.raises(ChildConflict) as conflict:
        adapter.create(desired, env.uid, token())
    assert conflict.value.permanent
    assert adapter._ocid_of(foreign.data) in str(conflict.value)
    assert case.count(env, desired) == 1
    # adopting it takes its OCID in the spec
    adopted = adapter.observe(dataclasses.replace(desired, adopt_ocid=adapter._ocid_of(foreign.data)), None, env.uid)
    assert adopted is not None
    assert adopted.ocid == adapter._ocid_of(foreign.data)
    assert PIPELINE_UID_TAG not in adopted.freeform_tags
    with pytest.raises(ValueError, match="never created"):
        adapter.create(dataclasses.replace(desired, adopt_ocid=adopted.ocid), env.uid, token())


@by_kind
def test_delete_is_confirmed_and_idempotent(env: Env, case: Case, slow: Callable[[float], None]) -> None:
    adapter = env.adapter(case.kind)
    desired = case.desired(env)
    observed = create(env, case)
    slow(31)  # created slowly: settled by now
    adapter.delete(observed)
    during = adapter.observe(desired, observed.ocid, env.uid)
    if case.deleting_phase:
        assert during is not None
        assert during.phase is Phase.DELETING
        adapter.delete(observed)  # already on its way: nothing to do
        slow(31)
    else:
        assert during is None
    assert adapter.observe(desired, observed.ocid, env.uid) is None
    assert adapter.observe(desired, None, env.uid) is None
    adapter.delete(observed)  # gone: still not an error
    assert case.count(env, desired) == 0


@by_kind
def test_a_404_on_a_known_ocid_is_not_taken_for_deletion(env: Env, case: Case,
                                                        ocisim_control: OcisimControl) -> None:
    adapter = env.adapter(case.kind)
    desired = case.desired(env)
    observed = create(env, case)
    service, operation = GETS[case.kind]
    ocisim_control.fault(service=service, operation=operation, status=404, code="NotAuthorizedOrNotFound", count=1)
    with pytest.raises(DeletionNotConfirmed) as unconfirmed:
        adapter.observe(desired, observed.ocid, env.uid)
    assert not unconfirmed.value.permanent
    assert unconfirmed.value.opc_request_id
    again = adapter.observe(desired, observed.ocid, env.uid)
    assert again is not None
    assert again.ocid == observed.ocid


@pytest.mark.parametrize("case", [c for c in CASES if c.kind is ChildKind.TOPIC], ids=["Topic"])
def test_adopting_an_ocid_that_does_not_exist_is_a_permanent_error(env: Env, case: Case) -> None:
    missing = "ocid1.onstopic.oc1.iad.aaaaaaaanosuchtopic"
    with pytest.raises(AdoptionTargetMissing) as error:
        env.adapter(case.kind).observe(dataclasses.replace(case.desired(env), adopt_ocid=missing), None, env.uid)
    assert error.value.permanent
    assert missing in str(error.value)


def test_a_desired_child_with_unknown_or_unresolved_properties_is_refused(env: Env) -> None:
    case = next(c for c in CASES if c.kind is ChildKind.STREAM)
    adapter = env.adapter(case.kind)
    with pytest.raises(ValueError, match="unknown Stream properties"):
        adapter.observe(case.desired(env, retention_hours=48), None, env.uid)
    from siem_operator.children import Ref

    with pytest.raises(ValueError, match="StreamPool/events"):
        adapter.create(case.desired(env, stream_pool_id=Ref(ChildKind.STREAM_POOL, "events")), env.uid, token())
    with pytest.raises(ValueError, match="serves region"):
        adapter.observe(dataclasses.replace(case.desired(env), region="us-phoenix-1"), None, env.uid)


def test_logs_name_children_not_values(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="siem_operator")
    case = next(c for c in CASES if c.kind is ChildKind.VAULT_SECRET)
    observed = create(env, case)
    assert "created VaultSecret" in caplog.text
    assert observed.ocid in caplog.text
    assert "hec-token-one" not in caplog.text


def test_an_unconfirmed_subscription_can_be_deleted(env: Env) -> None:
    case = next(c for c in CASES if c.kind is ChildKind.SUBSCRIPTION)
    adapter = env.adapter(case.kind)
    desired = case.desired(env, protocol="EMAIL", endpoint="secops@example.com")
    observed = adapter.create(desired, env.uid, token())
    assert (observed.phase, observed.lifecycle_state) == (Phase.PENDING, "PENDING")  # awaits a confirmation
    adapter.delete(observed)
    assert adapter.observe(desired, observed.ocid, env.uid) is None
    assert case.count(env, desired) == 0


def test_a_child_whose_parent_is_gone_is_observed_gone_not_looked_up(env: Env) -> None:
    """During a deletion the function's recorded OCID is gone and so is its application: its
    application_id no longer resolves. Observing it must say "gone", not send a Ref to OCI."""
    from siem_operator.children import Ref

    case = next(c for c in CASES if c.kind is ChildKind.FUNCTION)
    adapter = env.adapter(case.kind)
    observed = create(env, case)
    unresolved = case.desired(env, application_id=Ref(ChildKind.APPLICATION, "app"))
    assert adapter.observe(unresolved, observed.ocid, env.uid) is not None  # a known OCID is still read
    adapter.delete(observed)
    assert adapter.observe(unresolved, observed.ocid, env.uid) is None
    assert adapter.observe(unresolved, None, env.uid) is None
