"""Resource Scheduler ``/20240430``: schedules that start, stop or back up resources on a recurrence.

What is emulated, and how:

- ``POST/GET/PUT/DELETE /schedules[/{id}]``, ``ListSchedules`` (``{"items": [...]}``, paged), and the
  ``activateSchedule``, ``deactivateSchedule`` and ``changeCompartment`` actions. Create, update
  and compartment moves answer with an ``opc-work-request-id`` (served under ``/workRequests``);
  a new schedule is CREATING, then ACTIVE after ``provisioningDelay``; deletes pass through
  DELETING to DELETED, and a deleted schedule stays readable by id.
- A schedule names its targets statically (``resources``, at most 25) or dynamically
  (``resourceFilters``), exactly one of the two. Filters are validated and stored, but ocisim
  resolves them to no resource at run time (it has no cross-service resource search).
- ``recurrenceType`` ``CRON`` takes a 5-field UNIX cron expression evaluated in
  ``localTimeZone`` (default UTC); ``ICAL`` takes an RFC 5545 RRULE (see
  :mod:`ocisim.services.scheduler_timing` for the subset). Runs happen only inside
  ``[timeStarts, timeEnds]``. Bad expressions answer 400 ``InvalidParameter``.
- Runs follow the **virtual** clock. Each run of an ACTIVE schedule acts on every resource: the
  only action ocisim performs is ``START_RESOURCE`` on a function (OCID type ``fnfunc``), which
  invokes it detached through the Functions service (the ``functions.invoke`` hook), with the
  resource's ``BODY`` parameter as the payload (a string as is, anything else as JSON) and its
  ``HEADER`` parameter as extra headers. Any other action or resource type fails that resource
  ("not emulated"). A run is recorded as a work request (``operationType`` = the action, status
  SUCCEEDED or FAILED) and sets ``timeLastRun`` (the instant the run was due), ``lastRunStatus``
  and ``timeNextRun``.
- When the clock jumps over several due instants, each missed run fires once, in order, up to
  100 per schedule and tick; further ones are skipped and counted (``skippedRuns`` in
  ``GET /_ocisim/scheduler/runs``). A deactivated schedule does not fire, and does not replay
  the runs it missed once activated again.
- Resource events ``com.oraclecloud.resourcescheduler.<operation>`` are emitted for create,
  update, delete, activate, deactivate and compartment moves (``deactivateschedule`` is a
  documented type; the others follow the same convention, unverified).

Control routes: ``GET /_ocisim/scheduler/runs[?scheduleId=]``, ``POST /_ocisim/scheduler/tick``
(fire everything due now; returns the runs fired) and ``POST /_ocisim/scheduler/schedules/{id}/fire``
(one run now, whatever the recurrence).
"""

from __future__ import annotations

import collections
import logging
import secrets
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import (
    Call,
    ControlRoute,
    Lifecycle,
    Regional,
    Route,
    Service,
    WorkRequest,
    cloud_event,
    emit_event,
    empty_response,
    field,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid, ocid_type
from ocisim.services.scheduler_model import (
    ACTIONS,
    MAX_RUNS_KEPT,
    RECURRENCE_TYPES,
    STATES,
    VERSION,
    Run,
    Schedule,
    invoke_payload,
    parse_enum,
    parse_filters,
    parse_resources,
    parse_time,
    schedule_json,
)
from ocisim.services.scheduler_timing import (
    ClockTicker,
    CronRecurrence,
    Recurrence,
    RecurrenceError,
    RRuleRecurrence,
    due_runs,
    zone,
)
from ocisim.world import World

log = logging.getLogger("ocisim.scheduler")


class SchedulerService(Service):
    name = "resource-scheduler"
    versions = (VERSION,)
    work_requests = True
    work_requests_wrapped = True
    audit_source = "resourcescheduler"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._schedules: Regional[dict[str, Schedule]] = Regional(lambda _region: {})
        self._runs: collections.deque[Run] = collections.deque(maxlen=MAX_RUNS_KEPT)
        #: bumped on reset, so a run under way when the world resets is not recorded
        self._generation = 0
        self.ticker = ClockTicker(world.clock, self._tick, "ocisim-resource-scheduler")

    def reset(self) -> None:
        self._schedules.clear()
        self._runs.clear()
        self._generation += 1

    async def start(self) -> None:
        await self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/schedules", "CreateSchedule", self.create, retry_token=True),
            Route("GET", "/schedules", "ListSchedules", self.list_schedules),
            Route("GET", "/schedules/{scheduleId}", "GetSchedule", self.get),
            Route("PUT", "/schedules/{scheduleId}", "UpdateSchedule", self.update),
            Route("DELETE", "/schedules/{scheduleId}", "DeleteSchedule", self.delete),
            Route("POST", "/schedules/{scheduleId}/actions/activateSchedule", "ActivateSchedule", self.activate,
                  retry_token=True),
            Route("POST", "/schedules/{scheduleId}/actions/deactivateSchedule", "DeactivateSchedule",
                  self.deactivate, retry_token=True),
            Route("POST", "/schedules/{scheduleId}/actions/changeCompartment", "ChangeScheduleCompartment",
                  self.change_compartment, retry_token=True),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [
            ControlRoute("GET", "/scheduler/runs", self._control_runs),
            ControlRoute("POST", "/scheduler/tick", self._control_tick),
            ControlRoute("POST", "/scheduler/schedules/{scheduleId}/fire", self._control_fire),
        ]

    # -- helpers ------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _schedule(self, call: Call) -> Schedule:
        schedule = self._schedules[call.region.name].get(call.params["scheduleId"])
        if schedule is None:
            raise errors.not_found()
        schedule.lifecycle.settle(self._now())
        call.target(schedule.compartment_id, schedule.id, schedule.display_name)
        return schedule

    def _response(self, schedule: Schedule, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(schedule_json(schedule, self._now()), status=status,
                             headers={"etag": schedule.etag, **(headers or {})})

    def _work(self, call: Call, operation: str, schedule: Schedule, action: str) -> str:
        return self.work_request(call, operation, schedule.compartment_id, entity_type="schedule", action_type=action,
                                 identifier=schedule.id, entity_uri=f"/{VERSION}/schedules/{schedule.id}")

    async def _emit(self, call: Call, operation: str, schedule: Schedule) -> None:
        event = cloud_event(self.world, call.region, f"com.oraclecloud.resourcescheduler.{operation}",
                            source="resourcescheduler", compartment_id=schedule.compartment_id,
                            resource_id=schedule.id, resource_name=schedule.display_name,
                            freeform_tags=schedule.freeform_tags, defined_tags=schedule.defined_tags)
        await emit_event(self.world, call.region, event)

    def _recurrence(self, kind: str, details: str, time_zone: str | None, anchor: float) -> Recurrence:
        try:
            if kind == "CRON":
                return CronRecurrence(details, time_zone, self._now())
            return RRuleRecurrence(details, anchor, time_zone)
        except RecurrenceError as exc:
            raise errors.invalid(str(exc)) from exc

    @staticmethod
    def _check_window(starts: float | None, ends: float | None) -> None:
        if starts is not None and ends is not None and ends <= starts:
            raise errors.invalid("'timeEnds' must be after 'timeStarts'.")

    @staticmethod
    def _check_targets(resources: list[dict[str, Any]], filters: list[dict[str, Any]]) -> None:
        if resources and filters:
            raise errors.invalid("Specify either 'resources' or 'resourceFilters', not both.")
        if not resources and not filters:
            raise errors.missing("resources")

    # -- CRUD ---------------------------------------------------------------------------------------

    async def create(self, call: Call) -> web.StreamResponse:
        body = call.json()
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        action = parse_enum(body, "action", ACTIONS, required=True)
        kind = parse_enum(body, "recurrenceType", RECURRENCE_TYPES, required=True)
        details = field(body, "recurrenceDetails", str, required=True)
        assert action is not None
        assert kind is not None
        resources, filters = parse_resources(body), parse_filters(body)
        self._check_targets(resources, filters)
        starts, ends = parse_time(body, "timeStarts"), parse_time(body, "timeEnds")
        self._check_window(starts, ends)
        time_zone = field(body, "localTimeZone", str)
        try:
            zone(time_zone)
        except RecurrenceError as exc:
            raise errors.invalid(str(exc)) from exc
        now = self._now()
        anchor = starts if starts is not None else now - now % 60
        recurrence = self._recurrence(kind, details, time_zone, anchor)
        freeform, defined = tags(body)
        schedule = Schedule(
            id=new_ocid("resourceschedule", call.region.key), compartment_id=compartment_id,
            display_name=field(body, "displayName", str) or f"schedule{rfc3339(now)}",
            description=field(body, "description", str), action=action, recurrence_type=kind,
            recurrence_details=details, recurrence=recurrence, resources=resources, resource_filters=filters,
            time_starts=starts, time_ends=ends, local_time_zone=time_zone, time_created=now,
            lifecycle=Lifecycle("CREATING"), freeform_tags=freeform, defined_tags=defined, cursor=now)
        schedule.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        self._schedules[call.region.name][schedule.id] = schedule
        call.target(compartment_id, schedule.id, schedule.display_name)
        wr = self._work(call, "CREATE_SCHEDULE", schedule, "CREATED")
        await self._emit(call, "createschedule", schedule)
        return self._response(schedule, headers={"opc-work-request-id": wr})

    async def list_schedules(self, call: Call) -> web.StreamResponse:
        compartment_id, schedule_id = call.query("compartmentId"), call.query("scheduleId")
        if compartment_id is None and schedule_id is None:
            raise errors.missing("compartmentId")
        if compartment_id is not None:
            self.world.require_compartment(compartment_id)
            call.target(compartment_id)
        wanted_state = call.query("lifecycleState")
        if wanted_state is not None and wanted_state.upper() not in STATES:
            raise errors.invalid(f"'lifecycleState' must be one of {list(STATES)}.")
        wanted_state = wanted_state.upper() if wanted_state else None
        name, resource_id = call.query("displayName"), call.query("resourceId")
        now = self._now()
        items = []
        for s in self._schedules[call.region.name].values():
            state = s.lifecycle.settle(now)
            if ((compartment_id is not None and s.compartment_id != compartment_id)
                    or (schedule_id is not None and s.id != schedule_id)
                    or (name is not None and s.display_name != name)
                    or (resource_id is not None and all(r["id"] != resource_id for r in s.resources))
                    or (state != wanted_state if wanted_state else state == "DELETED")):
                continue
            items.append(s)
        keys = {"timeCreated": lambda s: (s.time_created, s.seq), "displayName": lambda s: (s.display_name, s.seq),
                "lifecycleState": lambda s: (s.lifecycle.state, s.seq), "state": lambda s: (s.lifecycle.state, s.seq)}
        ordered = sort_items(call, items, keys, "timeCreated")
        return list_response(call, [schedule_json(s, now) for s in ordered], wrap=True)

    async def get(self, call: Call) -> web.StreamResponse:
        return self._response(self._schedule(call))

    @staticmethod
    def _require_settled(schedule: Schedule) -> str:
        state = schedule.lifecycle.state
        if state == "DELETED":
            raise errors.not_found()
        if state not in ("ACTIVE", "INACTIVE"):
            raise errors.incorrect_state(f"The schedule is {state}.")
        return state

    async def update(self, call: Call) -> web.StreamResponse:
        schedule = self._schedule(call)
        call.check_if_match(schedule.etag)
        body = call.json()
        previous = self._require_settled(schedule)
        action = parse_enum(body, "action", ACTIONS) or schedule.action
        kind = parse_enum(body, "recurrenceType", RECURRENCE_TYPES) or schedule.recurrence_type
        details = field(body, "recurrenceDetails", str) or schedule.recurrence_details
        resources = parse_resources(body) if "resources" in body else schedule.resources
        filters = parse_filters(body) if "resourceFilters" in body else schedule.resource_filters
        if "resources" in body and resources and "resourceFilters" not in body:
            filters = []
        if "resourceFilters" in body and filters and "resources" not in body:
            resources = []
        self._check_targets(resources, filters)
        starts = parse_time(body, "timeStarts") if "timeStarts" in body else schedule.time_starts
        ends = parse_time(body, "timeEnds") if "timeEnds" in body else schedule.time_ends
        self._check_window(starts, ends)
        time_zone = field(body, "localTimeZone", str) if "localTimeZone" in body else schedule.local_time_zone
        now = self._now()
        anchor = starts if starts is not None else schedule.time_created - schedule.time_created % 60
        recurrence = self._recurrence(kind, details, time_zone, anchor)
        freeform, defined = tags(body)
        schedule.action, schedule.recurrence_type, schedule.recurrence_details = action, kind, details
        schedule.recurrence, schedule.resources, schedule.resource_filters = recurrence, resources, filters
        schedule.time_starts, schedule.time_ends, schedule.local_time_zone = starts, ends, time_zone
        schedule.display_name = field(body, "displayName", str) or schedule.display_name
        if "description" in body:
            schedule.description = field(body, "description", str)
        if "freeformTags" in body:
            schedule.freeform_tags = freeform
        if "definedTags" in body:
            schedule.defined_tags = defined
        schedule.cursor, schedule.time_updated, schedule.etag = now, now, secrets.token_hex(16)
        schedule.lifecycle.move("UPDATING", previous, now, self.world.settings.provisioning_delay)
        wr = self._work(call, "UPDATE_SCHEDULE", schedule, "UPDATED")
        await self._emit(call, "updateschedule", schedule)
        return empty_response(202, {"opc-work-request-id": wr, "etag": schedule.etag})

    async def delete(self, call: Call) -> web.StreamResponse:
        schedule = self._schedule(call)
        call.check_if_match(schedule.etag)
        self._require_settled(schedule)
        now = self._now()
        schedule.etag, schedule.time_updated = secrets.token_hex(16), now
        schedule.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        await self._emit(call, "deleteschedule", schedule)
        return empty_response(202)

    async def _set_active(self, call: Call, active: bool) -> web.StreamResponse:
        schedule = self._schedule(call)
        call.check_if_match(schedule.etag)
        state = self._require_settled(schedule)
        wanted = "ACTIVE" if active else "INACTIVE"
        if state != wanted:
            now = self._now()
            schedule.lifecycle.move(wanted, wanted, now, 0.0)
            # an activated schedule looks forward: the runs it missed while inactive are not replayed
            schedule.cursor, schedule.time_updated, schedule.etag = now, now, secrets.token_hex(16)
            await self._emit(call, "activateschedule" if active else "deactivateschedule", schedule)
        return self._response(schedule)

    async def activate(self, call: Call) -> web.StreamResponse:
        return await self._set_active(call, True)

    async def deactivate(self, call: Call) -> web.StreamResponse:
        return await self._set_active(call, False)

    async def change_compartment(self, call: Call) -> web.StreamResponse:
        schedule = self._schedule(call)
        call.check_if_match(schedule.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        self._require_settled(schedule)
        schedule.compartment_id, schedule.etag = target, secrets.token_hex(16)
        wr = self._work(call, "CHANGE_SCHEDULE_COMPARTMENT", schedule, "UPDATED")
        await self._emit(call, "changeschedulecompartment", schedule)
        return empty_response(202, {"opc-work-request-id": wr})

    # -- firing -----------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Fire every run of every ACTIVE schedule that fell due since the previous tick."""
        now = self._now()
        due: list[tuple[str, Schedule, float]] = []
        for region, schedules in self._schedules.items():
            for schedule in list(schedules.values()):
                state = schedule.lifecycle.settle(now)
                if state != "ACTIVE":
                    if state != "UPDATING":  # an UPDATING schedule resumes from its update instant
                        schedule.cursor = max(schedule.cursor, now)
                    continue
                # no runs for the time the schedule was still CREATING or UPDATING
                cursor = max(schedule.cursor, min(schedule.lifecycle.due, now))
                runs, skipped = due_runs(schedule.recurrence, cursor, now, not_before=schedule.time_starts,
                                         not_after=schedule.time_ends)
                schedule.cursor = now
                if skipped:
                    schedule.skipped_runs += skipped
                    log.warning("schedule %s: the clock jumped over %d more runs; they are skipped",
                                schedule.id, skipped)
                due.extend((region, schedule, at) for at in runs)
        due.sort(key=lambda item: item[2])
        for region, schedule, at in due:
            await self._fire(region, schedule, at, manual=False)

    async def _fire(self, region: str, schedule: Schedule, at: float, *, manual: bool) -> Run | None:
        """One run: act on every resource, then record it (unless the world was reset meanwhile)."""
        generation = self._generation
        results = [await self._act(region, schedule, resource) for resource in schedule.resources]
        if generation != self._generation:
            return None
        now = self._now()
        failed = any(r["status"] != "SUCCEEDED" for r in results)
        status = "FAILED" if failed else "SUCCEEDED"
        region_key = self.world.regions[region].key if region in self.world.regions else ""
        wr = WorkRequest(
            id=new_ocid(f"{self.name}workrequest", region_key), operation_type=schedule.action,
            compartment_id=schedule.compartment_id, time_accepted=now, time_done=now, failed=failed,
            resources=[{"entityType": "schedule", "actionType": "RELATED", "identifier": schedule.id,
                        "entityUri": f"/{VERSION}/schedules/{schedule.id}"}]
            + [{"entityType": ocid_type(r["resourceId"]) or "resource",
                "actionType": "RELATED" if r["status"] == "SUCCEEDED" else "FAILED",
                "identifier": r["resourceId"], "entityUri": None} for r in results])
        self._work_requests[region][wr.id] = wr
        schedule.time_last_run, schedule.last_run_status = at, status
        run = Run(id=new_ocid("resourceschedulerun", region_key), region=region, schedule_id=schedule.id,
                  action=schedule.action, time_scheduled=at, time_fired=now, status=status,
                  work_request_id=wr.id, manual=manual, results=results)
        self._runs.append(run)
        return run

    async def _act(self, region: str, schedule: Schedule, resource: dict[str, Any]) -> dict[str, Any]:
        """Apply the schedule's action to one resource; a function is started by invoking it."""
        rid = resource["id"]
        kind = ocid_type(rid)
        out: dict[str, Any] = {"resourceId": rid, "status": "FAILED", "message": None, "invokeStatus": None}
        if kind != "fnfunc":
            out["message"] = f"ocisim does not emulate {schedule.action} on '{kind}' resources."
            return out
        if schedule.action != "START_RESOURCE":
            out["message"] = f"{schedule.action} is not supported for functions (START_RESOURCE invokes them)."
            return out
        if not self.world.has("functions.invoke"):
            out["message"] = "The Functions service is not served."
            return out
        body, headers = invoke_payload(resource)
        try:
            status, _body, _headers = await self.world.call(
                "functions.invoke", region, rid, body, headers=headers, detached=True, intent=None)
        except errors.OciError as exc:
            out["message"] = f"{exc.status} {exc.code}: {exc.message}"
            return out
        except Exception:  # the run fails; the scheduler goes on
            log.exception("schedule %s: invoking %s failed", schedule.id, rid)
            out["message"] = "The invocation failed unexpectedly."
            return out
        out["invokeStatus"] = status
        if 200 <= status < 300:
            out["status"] = "SUCCEEDED"
        else:
            out["message"] = f"The invocation answered {status}."
        return out

    # -- inventory and control ------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        now = self._now()
        return {"schedules": [schedule_json(s, now) for s in self._schedules[region].values()
                              if s.lifecycle.settle(now) != "DELETED"]}

    def _find(self, schedule_id: str) -> tuple[str, Schedule]:
        for region, schedules in self._schedules.items():
            schedule = schedules.get(schedule_id)
            if schedule is not None:
                return region, schedule
        raise errors.not_found()

    async def _control_runs(self, request: web.Request) -> web.StreamResponse:
        """``GET /_ocisim/scheduler/runs[?scheduleId=]``: the runs so far, oldest first."""
        wanted = request.query.get("scheduleId")
        runs = [r.to_json() for r in self._runs if wanted is None or r.schedule_id == wanted]
        skipped = {s.id: s.skipped_runs for _region, schedules in self._schedules.items()
                   for s in schedules.values() if s.skipped_runs and (wanted is None or s.id == wanted)}
        return json_response({"runs": runs, "skippedRuns": skipped})

    async def _control_tick(self, _request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/scheduler/tick``: fire everything due now; returns the runs fired since the call."""
        before = self._runs[-1].seq if self._runs else -1
        await self.ticker.run_now()
        return json_response({"runs": [r.to_json() for r in self._runs if r.seq > before]})

    async def _control_fire(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/scheduler/schedules/{id}/fire``: one run now, whatever the recurrence."""
        region, schedule = self._find(request.match_info["scheduleId"])
        state = schedule.lifecycle.settle(self._now())
        if state in ("DELETING", "DELETED"):
            raise errors.incorrect_state(f"The schedule is {state}.")

        async def fire() -> Run | None:
            return await self._fire(region, schedule, self._now(), manual=True)

        run = await self.ticker.exclusive(fire)
        if run is None:
            raise errors.incorrect_state("The world was reset while the run was under way.")
        return json_response(run.to_json())
