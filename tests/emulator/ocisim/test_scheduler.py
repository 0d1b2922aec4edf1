"""Resource Scheduler through the real SDK: schedules, validation, and runs on the virtual clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.errors import OciError
from ocisim.testing import sdk_client, swapped_hook
from tests.support.contract import raw_call

M = oci.resource_scheduler.models
FUNCTION = "ocid1.fnfunc.oc1.iad.aaaaaaaafanoutfunction"
OTHER_FUNCTION = "ocid1.fnfunc.oc1.iad.aaaaaaaaotherfunction"
T0 = "2026-01-01T00:00:30Z"


@pytest.fixture
def invocations(ocisim: OcisimServer) -> Iterator[list[dict[str, Any]]]:
    """A stand-in for the Functions service that records every invocation and answers 202."""
    calls: list[dict[str, Any]] = []

    async def invoke(region: str, function_id: str, body: bytes, headers: dict[str, str] | None = None,
                     detached: bool = False, intent: str | None = "cloudevent") -> tuple[int, bytes, dict[str, str]]:
        if function_id == OTHER_FUNCTION:
            raise OciError(404, "NotAuthorizedOrNotFound", "no such function")
        calls.append({"region": region, "functionId": function_id, "body": body, "headers": dict(headers or {}),
                      "detached": detached, "intent": intent})
        return 202, b"", {}

    with swapped_hook(ocisim, "functions.invoke", invoke):
        yield calls


@pytest.fixture
def client(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.resource_scheduler.ScheduleClient:
    return sdk_client(ocisim, oci.resource_scheduler.ScheduleClient, oci_config, service="resource-scheduler")


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    comp: str = ocisim_control.add_compartment("schedules")["id"]
    return comp


def _error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        fn(*args, **kwargs)
    return err.value


def _details(comp: str, recurrence: str = "*/5 * * * *", kind: str = "CRON", body: Any = None,
             resources: list[Any] | None = None, **kwargs: Any) -> Any:
    if resources is None:
        params = [M.BodyParameter(parameter_type="BODY", value=body)] if body is not None else None
        resources = [M.Resource(id=FUNCTION, parameters=params)]
    kwargs.setdefault("display_name", "fanout")
    return M.CreateScheduleDetails(compartment_id=comp, action="START_RESOURCE", recurrence_details=recurrence,
                                   recurrence_type=kind, resources=resources, **kwargs)


def tick(control: OcisimControl) -> None:
    control.request("POST", "/scheduler/tick")


def runs(control: OcisimControl, schedule_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = control.request("GET", f"/scheduler/runs?scheduleId={schedule_id}")["runs"]
    return result


def test_create_get_list_and_work_request(client: oci.resource_scheduler.ScheduleClient,
                                          ocisim_control: OcisimControl, comp: str) -> None:
    ocisim_control.settings(provisioningDelay=5.0)
    ocisim_control.freeze(at=T0)
    response = client.create_schedule(_details(comp, body={"kind": "fanout"}, freeform_tags={"siem": "yes"}))
    schedule = response.data
    assert (schedule.display_name, schedule.action, schedule.recurrence_type, schedule.recurrence_details) == (
        "fanout", "START_RESOURCE", "CRON", "*/5 * * * *")
    assert schedule.lifecycle_state == "CREATING"
    assert schedule.resources[0].id == FUNCTION
    assert schedule.resources[0].parameters[0].value == {"kind": "fanout"}
    assert schedule.freeform_tags == {"siem": "yes"}
    assert response.headers["etag"]
    work_id = response.headers["opc-work-request-id"]
    assert client.get_work_request(work_id).data.status == "IN_PROGRESS"
    ocisim_control.advance(5)
    got = client.get_schedule(schedule.id).data
    assert got.lifecycle_state == "ACTIVE"
    assert got.time_next_run.isoformat() == "2026-01-01T00:05:00+00:00"
    assert (got.time_last_run, got.last_run_status) == (None, None)
    work = client.get_work_request(work_id).data
    assert (work.operation_type, work.status) == ("CREATE_SCHEDULE", "SUCCEEDED")
    assert [(r.entity_type, r.action_type, r.identifier) for r in work.resources] == [
        ("schedule", "CREATED", schedule.id)]

    second = client.create_schedule(_details(comp, recurrence="0 * * * *", display_name="hourly")).data
    listed = client.list_schedules(compartment_id=comp, sort_by="displayName", sort_order="ASC").data
    assert [s.display_name for s in listed.items] == ["fanout", "hourly"]
    page = client.list_schedules(compartment_id=comp, limit=1)
    assert [s.id for s in page.data.items] == [second.id]  # timeCreated, newest first
    assert page.has_next_page
    assert [s.id for s in client.list_schedules(schedule_id=schedule.id).data.items] == [schedule.id]
    assert client.list_schedules(compartment_id=comp, resource_id=FUNCTION).data.items[0].id in (schedule.id,
                                                                                               second.id)
    assert client.list_schedules(compartment_id=comp, display_name="nope").data.items == []


def test_validation_errors(client: oci.resource_scheduler.ScheduleClient, ocisim: OcisimServer,
                          oci_config: dict[str, Any], comp: str) -> None:
    bad = [
        (_details(comp, recurrence="*/5 * * *"), "InvalidParameter"),  # 4 fields
        (_details(comp, recurrence="0 */5 * * * *"), "InvalidParameter"),  # 6 fields: not UNIX cron
        (_details(comp, recurrence="61 * * * *"), "InvalidParameter"),
        (_details(comp, recurrence="0 0 30 2 *"), "InvalidParameter"),  # never fires
        (_details(comp, recurrence="FREQ=FORTNIGHTLY", kind="ICAL"), "InvalidParameter"),
        (_details(comp, recurrence="FREQ=SECONDLY", kind="ICAL"), "InvalidParameter"),
        (_details(comp, recurrence="EXDATE:20260101T010000Z", kind="ICAL"), "InvalidParameter"),  # no RRULE
        (_details(comp, local_time_zone="Mars/Olympus"), "InvalidParameter"),
        (_details(comp, resources=[M.Resource(id=f"{FUNCTION}{i}") for i in range(26)]), "LimitExceeded"),
        (_details(comp, resources=[M.Resource(id="not-an-ocid")]), "InvalidParameter"),
        (_details(comp, resources=[]), "MissingParameter"),
    ]
    for details, code in bad:
        error = _error(client.create_schedule, details)
        assert (error.status, error.code) == (400, code), details
    window = _details(comp)
    window.time_starts, window.time_ends = "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"
    assert _error(client.create_schedule, window).code == "InvalidParameter"
    assert _error(client.create_schedule, _details("ocid1.compartment.oc1..nope")).status == 404
    both = _details(comp)
    both.resource_filters = [M.CompartmentIdResourceFilter(value=comp)]
    assert _error(client.create_schedule, both).code == "InvalidParameter"

    def raw(body: dict[str, Any]) -> tuple[int, str]:
        response = raw_call(ocisim, oci_config, "POST", "resource-scheduler", "/20240430/schedules", body=body)
        return response.status_code, response.json()["code"]

    base = {"compartmentId": comp, "action": "START_RESOURCE", "recurrenceType": "CRON",
            "recurrenceDetails": "* * * * *", "resources": [{"id": FUNCTION}]}
    assert raw({**base, "action": "REBOOT"}) == (400, "InvalidParameter")
    assert raw({k: v for k, v in base.items() if k != "action"}) == (400, "MissingParameter")
    assert raw({**base, "resources": [{"id": FUNCTION, "parameters": [
        {"parameterType": "BODY", "value": 1}, {"parameterType": "BODY", "value": 2}]}]}) == (400, "InvalidParameter")
    assert raw({**base, "resources": [{"id": FUNCTION, "parameters": [{"parameterType": "COOKIE"}]}]}) == (
        400, "InvalidParameter")
    response = raw_call(ocisim, {**oci_config}, "POST", "resource-scheduler", "/20240430/schedules")
    assert (response.status_code, response.json()["code"]) == (400, "CannotParseRequest")
    assert _error(client.get_schedule, "ocid1.resourceschedule.oc1.iad.nope").status == 404
    assert _error(client.list_schedules).code == "MissingParameter"


def test_runs_follow_the_virtual_clock(client: oci.resource_scheduler.ScheduleClient, ocisim: OcisimServer,
                                       ocisim_control: OcisimControl, comp: str,
                                       invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at=T0)
    schedule = client.create_schedule(_details(comp, body={"kind": "fanout"})).data
    ocisim_control.advance(240)  # 00:04:30: nothing due yet
    tick(ocisim_control)
    assert invocations == []
    ocisim_control.advance(360)  # 00:10:30: 00:05 and 00:10 are due
    tick(ocisim_control)
    assert invocations == [
        {"region": ocisim.home_region, "functionId": FUNCTION, "body": b'{"kind":"fanout"}', "headers": {},
         "detached": True, "intent": None},
    ] * 2
    fired = runs(ocisim_control, schedule.id)
    assert [(r["timeScheduled"], r["status"], r["manual"]) for r in fired] == [
        ("2026-01-01T00:05:00.000Z", "SUCCEEDED", False), ("2026-01-01T00:10:00.000Z", "SUCCEEDED", False)]
    got = client.get_schedule(schedule.id).data
    assert got.time_last_run.isoformat() == "2026-01-01T00:10:00+00:00"
    assert got.last_run_status == "SUCCEEDED"
    assert got.time_next_run.isoformat() == "2026-01-01T00:15:00+00:00"
    work = client.get_work_request(fired[1]["workRequestId"]).data
    assert (work.operation_type, work.status, work.compartment_id) == ("START_RESOURCE", "SUCCEEDED", comp)
    assert [(r.entity_type, r.identifier) for r in work.resources] == [("schedule", schedule.id),
                                                                      ("fnfunc", FUNCTION)]
    tick(ocisim_control)  # nothing new is due: no run twice
    assert len(invocations) == 2


def test_deactivate_stops_runs_and_activate_does_not_replay(
        client: oci.resource_scheduler.ScheduleClient, ocisim_control: OcisimControl, comp: str,
        invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at=T0)
    schedule = client.create_schedule(_details(comp, body="plain text")).data
    inactive = client.deactivate_schedule(schedule.id).data
    assert (inactive.lifecycle_state, inactive.time_next_run) == ("INACTIVE", None)
    ocisim_control.advance(3600)
    tick(ocisim_control)
    assert invocations == []
    active = client.activate_schedule(schedule.id).data
    assert active.lifecycle_state == "ACTIVE"
    assert active.time_next_run.isoformat() == "2026-01-01T01:05:00+00:00"
    tick(ocisim_control)
    assert invocations == []
    ocisim_control.advance(300)
    tick(ocisim_control)
    assert [c["body"] for c in invocations] == [b"plain text"]
    assert client.deactivate_schedule(schedule.id).data.lifecycle_state == "INACTIVE"
    assert client.deactivate_schedule(schedule.id).data.lifecycle_state == "INACTIVE"  # idempotent


def test_ical_recurrence_window_and_headers(client: oci.resource_scheduler.ScheduleClient,
                                            ocisim_control: OcisimControl, comp: str,
                                            invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at=T0)
    resource = M.Resource(id=FUNCTION, parameters=[M.HeaderParameter(parameter_type="HEADER",
                                                                     value={"x-run": "scheduled"})])
    details = _details(comp, recurrence="FREQ=MINUTELY;INTERVAL=15", kind="ICAL", resources=[resource],
                       time_starts="2026-01-01T00:10:00Z", time_ends="2026-01-01T00:45:00Z")
    schedule = client.create_schedule(details).data
    assert schedule.time_next_run.isoformat() == "2026-01-01T00:10:00+00:00"
    ocisim_control.advance(3600 * 2)
    tick(ocisim_control)
    assert [r["timeScheduled"] for r in runs(ocisim_control, schedule.id)] == [
        "2026-01-01T00:10:00.000Z", "2026-01-01T00:25:00.000Z", "2026-01-01T00:40:00.000Z"]
    assert [(c["body"], c["headers"]) for c in invocations] == [(b"", {"x-run": "scheduled"})] * 3
    assert client.get_schedule(schedule.id).data.time_next_run is None  # past timeEnds


def test_time_zone_and_catch_up_cap(client: oci.resource_scheduler.ScheduleClient, ocisim_control: OcisimControl,
                                    comp: str, invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at="2026-01-01T12:00:00Z")
    morning = client.create_schedule(_details(comp, recurrence="0 9 * * *", local_time_zone="America/New_York"))
    assert morning.data.time_next_run.isoformat() == "2026-01-01T14:00:00+00:00"
    every_minute = client.create_schedule(_details(comp, recurrence="* * * * *")).data
    client.deactivate_schedule(morning.data.id)
    ocisim_control.advance(150 * 60)
    tick(ocisim_control)
    result = ocisim_control.request("GET", f"/scheduler/runs?scheduleId={every_minute.id}")
    assert len(result["runs"]) == 100
    assert result["skippedRuns"] == {every_minute.id: 50}
    assert len(invocations) == 100
    assert client.get_schedule(every_minute.id).data.time_next_run.isoformat() == "2026-01-01T14:31:00+00:00"


def test_failed_runs_are_recorded(client: oci.resource_scheduler.ScheduleClient, ocisim_control: OcisimControl,
                                  comp: str, invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at=T0)
    resources = [M.Resource(id=FUNCTION), M.Resource(id=OTHER_FUNCTION),
                 M.Resource(id="ocid1.instance.oc1.iad.aaaaaaaavm")]
    schedule = client.create_schedule(_details(comp, resources=resources)).data
    ocisim_control.advance(300)
    tick(ocisim_control)
    (run,) = runs(ocisim_control, schedule.id)
    assert run["status"] == "FAILED"
    assert [(r["resourceId"], r["status"], r["invokeStatus"]) for r in run["resources"]] == [
        (FUNCTION, "SUCCEEDED", 202), (OTHER_FUNCTION, "FAILED", None),
        ("ocid1.instance.oc1.iad.aaaaaaaavm", "FAILED", None)]
    assert run["resources"][1]["message"] == "404 NotAuthorizedOrNotFound: no such function"
    assert client.get_schedule(schedule.id).data.last_run_status == "FAILED"
    assert client.get_work_request(run["workRequestId"]).data.status == "FAILED"
    stop = client.create_schedule(M.CreateScheduleDetails(
        compartment_id=comp, action="STOP_RESOURCE", recurrence_details="* * * * *", recurrence_type="CRON",
        resources=[M.Resource(id=FUNCTION)])).data
    fired = ocisim_control.request("POST", f"/scheduler/schedules/{stop.id}/fire")
    assert (fired["status"], fired["manual"]) == ("FAILED", True)
    assert "not supported for functions" in fired["resources"][0]["message"]
    assert len(invocations) == 1


def test_fire_now_and_update(client: oci.resource_scheduler.ScheduleClient, ocisim_control: OcisimControl,
                             comp: str, invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at=T0)
    schedule = client.create_schedule(_details(comp, body={"n": 1})).data
    fired = ocisim_control.request("POST", f"/scheduler/schedules/{schedule.id}/fire")
    assert (fired["timeScheduled"], fired["status"]) == ("2026-01-01T00:00:30.000Z", "SUCCEEDED")
    assert [c["body"] for c in invocations] == [b'{"n":1}']

    etag = client.get_schedule(schedule.id).headers["etag"]
    assert _error(client.update_schedule, schedule.id, M.UpdateScheduleDetails(display_name="x"),
                  if_match="stale").status == 412
    updated = client.update_schedule(schedule.id, M.UpdateScheduleDetails(
        recurrence_details="0 * * * *", display_name="hourly",
        resources=[M.Resource(id=FUNCTION, parameters=[M.BodyParameter(parameter_type="BODY", value={"n": 2})])]),
        if_match=etag)
    assert updated.status == 202
    assert updated.data is None
    assert client.get_work_request(updated.headers["opc-work-request-id"]).data.operation_type == "UPDATE_SCHEDULE"
    got = client.get_schedule(schedule.id).data
    assert (got.display_name, got.recurrence_details, got.lifecycle_state) == ("hourly", "0 * * * *", "ACTIVE")
    assert got.time_next_run.isoformat() == "2026-01-01T01:00:00+00:00"
    assert got.time_updated is not None
    bad = M.UpdateScheduleDetails(recurrence_details="nonsense")
    assert _error(client.update_schedule, schedule.id, bad).code == "InvalidParameter"
    ocisim_control.advance(3600)
    tick(ocisim_control)
    assert [c["body"] for c in invocations] == [b'{"n":1}', b'{"n":2}']


def test_delete_and_change_compartment(client: oci.resource_scheduler.ScheduleClient, ocisim: OcisimServer,
                                       ocisim_control: OcisimControl, comp: str,
                                       invocations: list[dict[str, Any]]) -> None:
    other: str = ocisim_control.add_compartment("elsewhere")["id"]
    ocisim_control.freeze(at=T0)
    ocisim_control.settings(provisioningDelay=2.0)
    schedule = client.create_schedule(_details(comp)).data
    ocisim_control.advance(2)
    moved = client.change_schedule_compartment(schedule.id, M.ChangeScheduleCompartmentDetails(compartment_id=other))
    assert moved.status == 202
    assert moved.headers["opc-work-request-id"]
    assert client.get_schedule(schedule.id).data.compartment_id == other
    assert client.list_schedules(compartment_id=comp).data.items == []
    assert client.delete_schedule(schedule.id).status == 202
    assert client.get_schedule(schedule.id).data.lifecycle_state == "DELETING"
    assert _error(client.activate_schedule, schedule.id).code == "IncorrectState"
    ocisim_control.advance(600)
    tick(ocisim_control)
    assert invocations == []  # a deleting schedule does not run
    assert client.get_schedule(schedule.id).data.lifecycle_state == "DELETED"
    assert client.list_schedules(compartment_id=other).data.items == []
    deleted = client.list_schedules(compartment_id=other, lifecycle_state="DELETED").data.items
    assert [s.id for s in deleted] == [schedule.id]
    assert _error(client.delete_schedule, schedule.id).status == 404
    assert ocisim_control.inventory()["regions"][ocisim.home_region].get("schedules") is None


def test_events_and_inventory(client: oci.resource_scheduler.ScheduleClient, ocisim: OcisimServer,
                              ocisim_control: OcisimControl, comp: str) -> None:
    seen: list[str] = []

    async def emit(_region: str, event: dict[str, Any]) -> None:
        seen.append(event["eventType"])

    with swapped_hook(ocisim, "events.emit", emit):
        schedule = client.create_schedule(_details(comp)).data
        client.deactivate_schedule(schedule.id)
        client.activate_schedule(schedule.id)
        client.delete_schedule(schedule.id)
    assert seen == ["com.oraclecloud.resourcescheduler.createschedule",
                    "com.oraclecloud.resourcescheduler.deactivateschedule",
                    "com.oraclecloud.resourcescheduler.activateschedule",
                    "com.oraclecloud.resourcescheduler.deleteschedule"]
    kept = client.create_schedule(_details(comp)).data
    listed = ocisim_control.inventory()["regions"][ocisim.home_region]["schedules"]
    assert [s["id"] for s in listed] == [kept.id]


def test_background_ticker_fires_without_being_asked(client: oci.resource_scheduler.ScheduleClient,
                                                     ocisim_control: OcisimControl, comp: str,
                                                     invocations: list[dict[str, Any]]) -> None:
    ocisim_control.freeze(at=T0)
    client.create_schedule(_details(comp, recurrence="* * * * *"))
    ocisim_control.advance(60)  # the clock jump wakes the ticker on the server's loop
    deadline = time.monotonic() + 5
    while not invocations and time.monotonic() < deadline:
        time.sleep(0.02)  # the ticker runs in the server thread; this only waits for it
    assert len(invocations) == 1
