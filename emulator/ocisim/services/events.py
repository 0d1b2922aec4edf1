"""Events ``/20181201``: rules, and delivery of matching events to their actions.

- Rules are CREATING, then ACTIVE after ``provisioningDelay``; updates pass through UPDATING and
  deletes through DELETING to DELETED (still readable by id, listed only when
  ``lifecycleState=DELETED`` is asked for). ``if-match`` guards updates, deletes and moves.
- ``condition`` is a *string* holding a JSON filter (see :mod:`ocisim.eventmatch`); an invalid one
  is a 400 saying why. ``actions.actions`` holds 1 to 10 actions: OSS (``streamId``), ONS
  (``topicId``), FAAS (``functionId``). Updating ``actions`` replaces them all (new action ids).
- Other services hand events to the ``events.emit`` hook (``framework.emit_event``). The hook
  matches, synchronously, the ACTIVE (or UPDATING) enabled rules of that region whose compartment
  is the event's or one of its ancestors, and returns; each enabled action of each matching rule is
  then delivered by a task on the server loop: OSS → ``streaming.put`` (the event JSON as the
  value, no key), ONS → ``ons.publish`` (the event JSON, message type JSON), FAAS →
  ``functions.invoke`` (the event JSON as the body, ``fn-intent: cloudevent``, synchronously so
  that the log records the function's answer). Each delivery is attempted once and logged
  (``GET /_ocisim/events/deliveries``); real Events' internal retries are not emulated.
- ``POST /_ocisim/events/emit`` injects an event; ``POST /_ocisim/events/drain`` waits for every
  delivery under way.
- Rule changes emit ``com.oraclecloud.eventsservice.<createrule|updaterule|deleterule>`` (names
  unverified); a rule never sees the event of its own creation or deletion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from typing import Any

import orjson
from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.control import read_json
from ocisim.eventmatch import matches
from ocisim.framework import (
    Call,
    ControlRoute,
    Lifecycle,
    Regional,
    Route,
    Service,
    cloud_event,
    empty_response,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid
from ocisim.services import events_model as model
from ocisim.services.events_model import Action, Rule
from ocisim.world import Region, World

log = logging.getLogger("ocisim.events")

VERSION = "20181201"
#: Records kept in the delivery log.
MAX_LOG = 10_000
#: States in which a rule acts on events.
LIVE_STATES = ("ACTIVE", "UPDATING")


@dataclasses.dataclass
class EventDelivery:
    """One event handed to one action of one rule."""

    id: str
    region: str
    rule_id: str
    action_id: str
    action_type: str
    target_id: str
    event_id: str | None
    event_type: str | None
    time: float
    state: str = "PENDING"  # PENDING | DELIVERED | FAILED
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"deliveryId": self.id, "region": self.region, "ruleId": self.rule_id, "actionId": self.action_id,
                "actionType": self.action_type, "targetId": self.target_id, "eventId": self.event_id,
                "eventType": self.event_type, "time": rfc3339(self.time), "state": self.state,
                "result": self.result, "error": self.error}


class EventsService(Service):
    name = "events"
    versions = (VERSION,)
    audit_source = "eventsservice"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._rules: Regional[dict[str, Rule]] = Regional(lambda _region: {})
        self._deliveries: dict[str, EventDelivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        world.provide("events.emit", self.emit)

    def reset(self) -> None:
        self._rules.clear()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self._deliveries.clear()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/rules", "CreateRule", self.create_rule, retry_token=True),
            Route("GET", "/rules", "ListRules", self.list_rules),
            Route("GET", "/rules/{ruleId}", "GetRule", self.get_rule),
            Route("PUT", "/rules/{ruleId}", "UpdateRule", self.update_rule),
            Route("DELETE", "/rules/{ruleId}", "DeleteRule", self.delete_rule),
            Route("POST", "/rules/{ruleId}/actions/changeCompartment", "ChangeRuleCompartment",
                  self.change_rule_compartment, retry_token=True),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [
            ControlRoute("GET", "/events/deliveries", self._control_deliveries),
            ControlRoute("POST", "/events/drain", self._control_drain),
            ControlRoute("POST", "/events/emit", self._control_emit),
        ]

    # -- lookups -----------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _rule(self, call: Call, *, deleted: bool = False) -> Rule:
        rule = self._rules[call.region.name].get(call.params["ruleId"])
        if rule is None or (rule.lifecycle.settle(self._now()) == "DELETED" and not deleted):
            raise errors.not_found()
        call.target(rule.compartment_id, rule.id, rule.display_name)
        return rule

    def _response(self, rule: Rule, status: int = 200) -> web.Response:
        return json_response(model.rule_json(rule, self._now()), status=status, headers={"etag": rule.etag})

    def _require_settled(self, rule: Rule) -> None:
        state = rule.lifecycle.settle(self._now())
        if state not in ("ACTIVE", "INACTIVE", "FAILED"):
            raise errors.incorrect_state(f"The rule is {state}; try again once it is ACTIVE.")

    async def _emit_own(self, region: Region, operation: str, rule: Rule) -> None:
        event = cloud_event(self.world, region, f"com.oraclecloud.eventsservice.{operation}", source="eventsservice",
                            compartment_id=rule.compartment_id, resource_id=rule.id, resource_name=rule.display_name,
                            freeform_tags=rule.freeform_tags, defined_tags=rule.defined_tags)
        await self.emit(region.name, event)

    # -- rules -------------------------------------------------------------------------------------

    async def create_rule(self, call: Call) -> web.StreamResponse:
        body = call.json()
        name = model.parse_display_name(body)
        description = model.parse_description(body)
        enabled = bool(model.parse_is_enabled(body, required=True))
        condition = model.parse_rule_condition(body, required=True) or ("{}", {})  # required: never None
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        actions = model.parse_actions(body, call.region.key, required=True) or []  # required: never None
        freeform, defined = tags(body)
        now = self._now()
        rule = Rule(id=new_ocid("eventrule", call.region.key), display_name=name, description=description,
                    is_enabled=enabled, condition_text=condition[0], condition=condition[1],
                    compartment_id=compartment_id, actions=actions, time_created=now, lifecycle=Lifecycle("CREATING"),
                    freeform_tags=freeform, defined_tags=defined)
        rule.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        call.target(compartment_id, rule.id, rule.display_name)
        await self._emit_own(call.region, "createrule", rule)  # before the rule exists: it does not see it
        self._rules[call.region.name][rule.id] = rule
        return self._response(rule)

    async def list_rules(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        wanted_state = call.query("lifecycleState")
        if wanted_state is not None and wanted_state not in model.STATES:
            raise errors.invalid(f"'lifecycleState' must be one of {list(model.STATES)}.")
        wanted_name = call.query("displayName")
        now = self._now()
        items = [r for r in self._rules[call.region.name].values()
                 if r.compartment_id == compartment_id and (wanted_name is None or r.display_name == wanted_name)
                 and (r.lifecycle.settle(now) == wanted_state if wanted_state is not None
                      else r.lifecycle.settle(now) != "DELETED")]
        items = sort_items(call, items, {"TIME_CREATED": lambda r: (r.time_created, r.seq),
                                         "ID": lambda r: r.id,
                                         "DISPLAY_NAME": lambda r: (r.display_name, r.seq)}, "TIME_CREATED")
        return list_response(call, [model.rule_json(r, now, summary=True) for r in items],
                             default_limit=10, max_limit=50)

    async def get_rule(self, call: Call) -> web.StreamResponse:
        return self._response(self._rule(call, deleted=True))

    async def update_rule(self, call: Call) -> web.StreamResponse:
        rule = self._rule(call)
        call.check_if_match(rule.etag)
        body = call.json()
        if "compartmentId" in body:
            raise errors.invalid("'compartmentId' cannot be updated; use changeCompartment.")
        name = model.parse_display_name(body) if body.get("displayName") is not None else None
        description = model.parse_description(body)
        enabled = model.parse_is_enabled(body, required=False)
        condition = model.parse_rule_condition(body, required=False)
        actions = model.parse_actions(body, call.region.key, required=False)
        freeform, defined = tags(body)
        self._require_settled(rule)
        if name is not None:
            rule.display_name = name
        if "description" in body:
            rule.description = description
        if enabled is not None:
            rule.is_enabled = enabled
        if condition is not None:
            rule.condition_text, rule.condition = condition
        if actions is not None:
            rule.actions = actions
        if "freeformTags" in body:
            rule.freeform_tags = freeform
        if "definedTags" in body:
            rule.defined_tags = defined
        rule.etag = secrets.token_hex(16)
        rule.lifecycle.move("UPDATING", "ACTIVE", self._now(), self.world.settings.provisioning_delay)
        await self._emit_own(call.region, "updaterule", rule)
        return self._response(rule)

    async def delete_rule(self, call: Call) -> web.StreamResponse:
        rule = self._rule(call)
        call.check_if_match(rule.etag)
        if rule.lifecycle.state == "DELETING":
            raise errors.incorrect_state("The rule is already being deleted.")
        now = self._now()
        rule.time_deleted = now
        rule.etag = secrets.token_hex(16)
        rule.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        await self._emit_own(call.region, "deleterule", rule)
        return empty_response(204)

    async def change_rule_compartment(self, call: Call) -> web.StreamResponse:
        rule = self._rule(call)
        call.check_if_match(rule.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        self._require_settled(rule)
        rule.compartment_id = target
        rule.etag = secrets.token_hex(16)
        call.target(target, rule.id, rule.display_name)
        return empty_response(200, {"etag": rule.etag})

    # -- matching and delivery ------------------------------------------------------------------------

    async def emit(self, region: str, event: dict[str, Any]) -> None:
        """The ``events.emit`` hook: match now, deliver in the background, return at once."""
        self.dispatch(region, event)

    def dispatch(self, region: str, event: dict[str, Any]) -> list[Rule]:
        """Start delivering ``event`` to every action of every rule it matches; answers those rules."""
        matched = self.match(region, event)
        if not matched:
            return []
        try:
            payload = orjson.dumps(event)
        except TypeError:  # a producer's bug: say so, and do not fail the call that emitted it
            log.exception("an event of type %s is not JSON; it was dropped", event.get("eventType"))
            return []
        for rule, actions in matched:
            for action in actions:
                self._start_delivery(region, event, payload, rule, action)
        return [rule for rule, _ in matched]

    def match(self, region: str, event: dict[str, Any]) -> list[tuple[Rule, list[Action]]]:
        """The live, enabled rules of ``region`` that ``event`` matches, with their enabled actions."""
        compartment_id = _event_compartment(event)
        if compartment_id is None:
            return []
        now = self._now()
        out: list[tuple[Rule, list[Action]]] = []
        for rule in list(self._rules[region].values()):
            if (rule.is_enabled and rule.lifecycle.settle(now) in LIVE_STATES
                    and self.world.is_within(compartment_id, rule.compartment_id) and matches(rule.condition, event)):
                out.append((rule, [a for a in rule.actions if a.is_enabled]))
        return out

    def _start_delivery(self, region: str, event: dict[str, Any], payload: bytes, rule: Rule, action: Action) -> None:
        delivery = EventDelivery(id=secrets.token_hex(8), region=region, rule_id=rule.id, action_id=action.id,
                                 action_type=action.action_type, target_id=action.target_id,
                                 event_id=_text(event.get("eventID")), event_type=_text(event.get("eventType")),
                                 time=self._now())
        self._deliveries[delivery.id] = delivery
        if len(self._deliveries) > MAX_LOG:
            for key in [k for k, d in self._deliveries.items() if d.state != "PENDING"][:len(self._deliveries) // 10]:
                del self._deliveries[key]
        task = asyncio.create_task(self._deliver(delivery, payload), name=f"ocisim-events-{delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: EventDelivery, payload: bytes) -> None:
        try:
            delivery.result = await self._act(delivery, payload)
            delivery.state = "DELIVERED"
        except errors.OciError as exc:
            delivery.state, delivery.error = "FAILED", f"{exc.status} {exc.code}: {exc.message}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken hook must not take the server down; the log shows it
            log.exception("delivering event %s to %s failed", delivery.event_id, delivery.target_id)
            delivery.state, delivery.error = "FAILED", f"{type(exc).__name__}: {exc}"

    async def _act(self, delivery: EventDelivery, payload: bytes) -> dict[str, Any]:
        """One action; answers what the target said, raises ``OciError`` when it refused."""
        region, target = delivery.region, delivery.target_id
        if delivery.action_type == "OSS":
            entries = await self.world.call("streaming.put", region, target, [(None, payload)])
            entry = entries[0] if entries else {}
            if entry.get("error"):
                raise errors.OciError(500, str(entry["error"]), str(entry.get("errorMessage") or "put failed"))
            return {"partition": entry.get("partition"), "offset": entry.get("offset")}
        if delivery.action_type == "ONS":
            title = f"OCI Event Notification: {delivery.event_type}"
            message_id = await self.world.call("ons.publish", region, target, payload.decode(), title=title,
                                               message_type="JSON")
            return {"messageId": message_id}
        status, _body, _headers = await self.world.call(
            "functions.invoke", region, target, payload, headers={"Content-Type": "application/json"},
            detached=False, intent="cloudevent")
        if not 200 <= int(status) < 300:
            raise errors.OciError(int(status), "FunctionInvokeFailed", f"The function answered {status}.")
        return {"status": int(status)}

    # -- inventory and control ---------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        now = self._now()
        return {"rules": [model.rule_json(r, now) for r in self._rules[region].values()
                          if r.lifecycle.settle(now) != "DELETED"]}

    async def _control_deliveries(self, request: web.Request) -> web.StreamResponse:
        """``GET /_ocisim/events/deliveries[?ruleId=&eventType=&region=&state=]``."""
        q = request.query
        return json_response([d.to_json() for d in self._deliveries.values()
                              if all(q.get(k) in (None, v) for k, v in (
                                  ("ruleId", d.rule_id), ("eventType", d.event_type), ("region", d.region),
                                  ("state", d.state)))])

    async def _control_drain(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/events/drain {"timeoutSeconds": 30}``: wait for every delivery under way."""
        body = await read_json(request)
        within = body.get("timeoutSeconds", 30)
        if isinstance(within, bool) or not isinstance(within, int | float) or within < 0:
            raise errors.invalid("'timeoutSeconds' must be a non-negative number.")
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=float(within))
        unfinished = len(self._tasks)
        return json_response({"drained": unfinished == 0, "unfinished": unfinished},
                             status=200 if unfinished == 0 else 504)

    async def _control_emit(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/events/emit``: ``{"region", "event": {...}}`` with a whole CloudEvents
        event, or ``{"region", "eventType", "compartmentId", "source", "resourceId", "resourceName",
        "additionalDetails"}`` to have one built. Answers the rules it matched."""
        body = await read_json(request)
        region = self.world.region(str(body.get("region") or self.world.home_region.name))
        event = body.get("event")
        if event is None:
            event_type, compartment_id = body.get("eventType"), body.get("compartmentId")
            if not isinstance(event_type, str) or not event_type:
                raise errors.missing("eventType")
            self.world.require_compartment(compartment_id)
            assert isinstance(compartment_id, str)
            details = body.get("additionalDetails")
            event = cloud_event(self.world, region, event_type, source=str(body.get("source") or "ocisim"),
                                compartment_id=compartment_id, resource_id=body.get("resourceId"),
                                resource_name=body.get("resourceName"),
                                additional_details=details if isinstance(details, dict) else None)
        if not isinstance(event, dict):
            raise errors.invalid("'event' must be a JSON object.")
        matched = self.dispatch(region.name, event)
        return json_response({"event": event, "matchedRuleIds": [rule.id for rule in matched]}, status=202)


def _event_compartment(event: dict[str, Any]) -> str | None:
    """The compartment an event comes from: ``extensions.compartmentId``, else ``data.compartmentId``."""
    for holder in (event.get("extensions"), event.get("data")):
        if isinstance(holder, dict) and isinstance(holder.get("compartmentId"), str):
            return str(holder["compartmentId"])
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
